from promptflow.core import tool


@tool
def shout(text: str) -> str:
    return str(text).upper()
