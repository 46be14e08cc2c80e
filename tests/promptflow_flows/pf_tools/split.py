from promptflow.core import tool
from promptflow.tools.common import parse_chat, render_jinja_template


@tool
def split(answer: str) -> list:
    text = render_jinja_template(
        "system:\nBe brief.\n\n# USER:\nname:\nada\ncontent:\n{{ answer }}{{ missing }}\n",
        answer=answer,
    )
    return parse_chat(text)
