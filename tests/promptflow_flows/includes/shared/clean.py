from promptflow.core import tool
from spaces import squash


@tool
def clean(text: str) -> str:
    return squash(text)
