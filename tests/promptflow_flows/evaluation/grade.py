from promptflow.core import tool


@tool
def grade(verdict: str) -> str:
    return "Correct" if verdict.strip().lower().startswith("correct") else "Incorrect"
