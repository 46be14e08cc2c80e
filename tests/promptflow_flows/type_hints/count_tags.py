from promptflow.core import tool


@tool
def count_tags(items: list) -> int:
    return len(items)
