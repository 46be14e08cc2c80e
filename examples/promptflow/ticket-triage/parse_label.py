from promptflow.core import tool

LABELS = ("billing", "shipping", "bug", "other")


@tool
def parse_label(reply: str) -> str:
    """The first known label in the model's reply, else 'other'."""
    text = reply.lower()
    return next((label for label in LABELS if label in text), "other")
