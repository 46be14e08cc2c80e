import os

from promptflow.core import tool


@tool
def language() -> str:
    return os.environ.get("GREETING_LANGUAGE", "English")
