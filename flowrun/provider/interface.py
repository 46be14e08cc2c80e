"""The model-client seam: what the engine asks of whatever answers its model calls.

``ModelClient`` is a Protocol; its implementations are wrappers around one another, as in
pydantic-ai's models:

    OpenAIClient         provider.client: the openai SDK (any OpenAI-compatible server)
    RateLimitedClient    provider.ratelimit: --rpm / --tpm around another client
    MockClient           provider.mock: --mock, an in-process fake model
    WaveClient           batch.batch_api.wave_client: parks requests for the Batch API

A request is the body the Chat Completions / Embeddings API takes, plus ``extra`` (fields the
SDK does not know, sent as they are). A failed call raises ``ModelCallError`` (errors.py) after
the client's own retries; a reply reports how many retries it took.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from flowrun.errors import ModelCallError
from flowrun.results import Usage

__all__ = ["ChatReply", "EmbedReply", "ModelCallError", "ModelClient", "cap_parameter"]


@dataclass
class ChatReply:
    """One chat completion: its message, why it stopped, its usage."""

    content: str | None
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    refusal: str | None = None
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    model: str = ""
    retries: int = 0
    notes: list[str] = field(default_factory=list)  # what the client did differently, to warn
    #: the server sent no usage: ``usage`` was counted locally with tiktoken (see
    #: ``provider.usage``), so its tokens and cost are approximate
    approximate_usage: bool = False


@dataclass
class EmbedReply:
    """The vectors of one embeddings request, in input order."""

    vectors: list[list[float]]
    usage: Usage
    model: str
    retries: int = 0
    approximate_usage: bool = False  #: as ``ChatReply.approximate_usage``


@runtime_checkable
class ModelClient(Protocol):
    """Answers chat and embeddings requests; every flowrun model call goes through one."""

    async def chat(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        """One chat completion (``on_text`` gets the text as it streams, when it streams)."""
        ...

    async def embed(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> EmbedReply:
        """One embeddings request."""
        ...

    async def aclose(self) -> None:
        """Release connections; the client is not used after."""
        ...


def cap_parameter(client: Any) -> str:
    """The request parameter that carries the output cap to the server ``client`` (or the client
    it wraps) calls: ``max_tokens`` for a server set up so, else ``max_completion_tokens``."""
    while client is not None:
        param = getattr(client, "cap_parameter", None)
        if isinstance(param, str):
            return param
        client = getattr(client, "inner", None)
    return "max_completion_tokens"
