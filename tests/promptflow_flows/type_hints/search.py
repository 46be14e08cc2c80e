from promptflow.core import tool


@tool
def search(tags: list) -> str:
    return "found " + " and ".join(tags)
