from promptflow.core import tool


@tool
def order_search(query: str) -> str:
    return "Your order ships tomorrow."
