from promptflow.core import tool


@tool
def fetch_text_content(url: str) -> str:
    """A stand-in for fetching a page: the text is made from the URL, offline."""
    return f"Page at {url}: a chat app for phones. Download it from the store."
