from promptflow.core import tool  # noqa: F401  (imported, but the decorator was forgotten)


def clean(text: str) -> str:
    return text.strip()
