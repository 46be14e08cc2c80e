from promptflow.core import tool


@tool
def make_chart(question: str) -> str:
    return "https://charts.example.com/c.png"
