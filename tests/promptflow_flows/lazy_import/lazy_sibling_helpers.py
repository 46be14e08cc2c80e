def describe(topic: str) -> str:
    return f"all about {topic}"
