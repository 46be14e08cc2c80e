from typing import List

from promptflow.core import log_metric, tool


@tool
def accuracy(grades: List[str], answers: List[str]) -> dict:
    value = round(grades.count("Correct") / len(grades), 2)
    log_metric("accuracy", value)
    log_metric("graded", len(answers))
    return {"accuracy": value}
