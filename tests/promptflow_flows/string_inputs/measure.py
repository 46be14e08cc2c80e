from promptflow.core import tool


@tool
def measure(context: str) -> int:
    return len(context)
