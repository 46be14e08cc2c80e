from promptflow.core import tool


@tool
def product_info(query: str) -> str:
    return "This T-shirt is made of cotton."
