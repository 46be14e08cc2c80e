def squash(text: str) -> str:
    return " ".join(text.split())
