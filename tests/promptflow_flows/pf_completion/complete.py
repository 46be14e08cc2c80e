from promptflow.connections import AzureOpenAIConnection, OpenAIConnection
from promptflow.core import tool
from promptflow.tools import aoai, openai


@tool
def complete(
    openai_connection: OpenAIConnection, azure_connection: AzureOpenAIConnection, word: str
) -> dict:
    first = openai.completion(
        connection=openai_connection,
        prompt="Say {{ word }}",
        model="gpt-3.5-turbo-instruct",
        max_tokens=5,
        word=word,
    )
    second = aoai.completion(
        connection=azure_connection,
        prompt="Say {{ word }} twice",
        deployment_name="instruct",
        presence_penalty=0.5,
        word=word,
    )
    return {"openai": first, "azure": second}
