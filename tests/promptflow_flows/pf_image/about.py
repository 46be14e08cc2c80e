from promptflow.contracts.multimedia import Image
from promptflow.core import tool


@tool
def about(original: Image, framed: Image) -> str:
    return (
        f"{type(original).__name__} {original._mime_type} {len(original)} bytes; "
        f"framed {framed._mime_type} {len(framed)} bytes, {str(framed)[:6]}"
    )
