from promptflow.connections import CustomConnection
from promptflow.core import tool


@tool
def sign(conn: CustomConnection, text: str) -> str:
    settings = dict(conn)
    return f"{text} -- {conn.author} ({conn['team']}, {len(settings)} settings)"
