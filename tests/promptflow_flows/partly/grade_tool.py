from promptflow.core import tool


@tool
def grade(answer: str, groundtruth: str) -> str:
    return "Correct" if groundtruth.lower() in answer.lower() else "Incorrect"
