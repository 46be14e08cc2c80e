from typing import Union

from openai import OpenAI
from promptflow.connections import AzureOpenAIConnection, OpenAIConnection
from promptflow.core import tool


@tool
def ask(connection: Union[AzureOpenAIConnection, OpenAIConnection], question: str) -> str:
    client = OpenAI(api_key=connection.api_key, base_url=connection.base_url)
    reply = client.chat.completions.create(
        model="gpt-4o-mini",
        messages=[{"role": "user", "content": question}],
        max_tokens=20,
    )
    return reply.choices[0].message.content
