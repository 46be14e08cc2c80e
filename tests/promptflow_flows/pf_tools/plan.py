from promptflow.connections import AzureOpenAIConnection
from promptflow.core import tool
from promptflow.tools.aoai import chat

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_step",
            "description": "Run one step of the plan.",
            "parameters": {"type": "object", "properties": {"step": {"type": "string"}}},
        },
    }
]


@tool
def plan(connection: AzureOpenAIConnection, steps: list, answer: str) -> dict:
    message = chat(
        connection=connection,
        prompt="# user:\nThe steps, one a line:\n{{ steps }}\nThe answer was {{ answer }}.",
        deployment_name="planner",
        tools=TOOLS,
        steps=steps,
        answer=answer,
    )
    call = message["tool_calls"][0]["function"]
    return {"role": message["role"], "name": call["name"], "arguments": call["arguments"]}
