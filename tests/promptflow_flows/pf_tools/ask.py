from promptflow.connections import OpenAIConnection
from promptflow.core import tool
from promptflow.tools.openai import chat

PROMPT = """# system:
You answer in one word.
{% for turn in history %}
# user:
{{ turn.inputs.question }}
# assistant:
{{ turn.outputs.answer }}
{% endfor %}
# user:
{{ question }}
"""


@tool
def ask(connection: OpenAIConnection, question: str, history: list) -> str:
    return chat(
        connection=connection,
        prompt=PROMPT,
        model="gpt-4o-mini",
        temperature=0,
        max_tokens=20,
        stop=[],
        history=history,
        question=question,
    )
