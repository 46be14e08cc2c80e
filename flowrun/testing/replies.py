"""What the loopback server speaks, without the server: scripted replies (``Reply``,
``ToolCall``), recorded requests, how a scripted entry matches a request, the default echo
responder, deterministic embeddings and OpenAI-style error bodies.

Shared by the HTTP server (``loopback``) and its Files and Batches APIs (``batches``).
The fake model's text helpers and embeddings are ``provider.mock``'s (``--mock`` answers the
same way, in process).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flowrun.provider.mock import content_text

CHAT = "/chat/completions"
COMPLETIONS = "/completions"  #: the legacy completions endpoint (promptflow flows' own Python)
EMBEDDINGS = "/embeddings"
MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "text-embedding-3-large")
_UNSET: Any = type("_Unset", (), {"__repr__": lambda self: "<unset>"})()
_USAGE_KEYS = {"prompt_tokens", "completion_tokens", "total_tokens"}
_USAGE_KEYS |= {"cached_tokens", "reasoning_tokens"}


@dataclass
class ToolCall:
    """A tool call the fake model makes; ``str`` arguments are sent verbatim (may be invalid JSON)."""

    name: str
    arguments: dict[str, Any] | str = field(default_factory=dict)
    id: str | None = None

    @property
    def arguments_json(self) -> str:
        return self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)


@dataclass
class Reply:
    """One scripted response. ``status != 200`` answers with an OpenAI-style error body."""

    content: str | None = None
    json: Any = _UNSET
    tool_calls: list[ToolCall] | None = None
    #: the legacy ``function_call`` of a model given ``functions`` (its id is not used)
    function_call: ToolCall | None = None
    refusal: str | None = None
    finish_reason: str | None = None
    usage: dict[str, int] | None = None
    status: int = 200
    retry_after: float | None = None
    latency: float | None = None
    model: str | None = None
    embedding: list[float] | None = None
    embeddings: list[Any] | None = None  #: every vector of the reply, as given (any shape)
    error: str | None = None  #: error message for ``status != 200``
    headers: dict[str, str] = field(default_factory=dict)  #: extra response headers
    #: answer without ``usage`` (and, streaming, without the usage chunk), as some
    #: OpenAI-compatible servers do (llama.cpp's server sends no usage chunk)
    no_usage: bool = False

    def __post_init__(self) -> None:
        if unknown := set(self.usage or ()) - _USAGE_KEYS:
            raise ValueError(
                f"unknown usage keys {sorted(unknown)}, allowed: {sorted(_USAGE_KEYS)}"
            )

    @property
    def text(self) -> str | None:
        """The message content actually sent (``json`` serialized when given)."""
        return self.content if self.json is _UNSET else json.dumps(self.json)


@dataclass
class RecordedRequest:
    """A request as received by the server."""

    method: str
    path: str  #: path after ``/v1``, without query string, e.g. ``"/chat/completions"``
    headers: dict[str, str]  #: lower-case keys
    body: Any  #: parsed JSON body, ``None`` when absent or unparsable
    raw: bytes
    query: str = ""
    received_at: float = 0.0  #: ``time.monotonic()`` when the request body was read
    replied_at: float | None = None  #: ``time.monotonic()`` when the reply was sent

    @property
    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")

    @property
    def messages(self) -> list[dict[str, Any]]:
        body = self.body if isinstance(self.body, dict) else {}
        messages = body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def images(self) -> list[dict[str, Any]]:
        """The ``image_url`` objects (``{"url": ..., "detail": ...}``) of every message, in order."""
        return [
            part["image_url"]
            for message in self.messages
            if isinstance(message, dict) and isinstance(message.get("content"), list)
            for part in message["content"]
            if isinstance(part, dict) and part.get("type") == "image_url"
        ]

    @property
    def last_user_text(self) -> str:
        """Text of the last user message (string content or the text parts of a list); for a
        legacy completions request, its prompt."""
        if self.path == COMPLETIONS and isinstance(self.body, dict):
            prompt = self.body.get("prompt")
            if isinstance(prompt, list) and all(isinstance(p, str) for p in prompt):
                return "\n".join(prompt)  # several prompts, one per line
            return prompt if isinstance(prompt, str) else ""
        for message in reversed(self.messages):
            if isinstance(message, dict) and message.get("role") == "user":
                return content_text(message.get("content"))
        return ""


Responder = Callable[[RecordedRequest], "Reply | str"]
Matcher = Callable[[RecordedRequest], Any]


@dataclass
class _Entry:
    responder: Reply | Responder
    match: str | Matcher | None
    times: int | None
    endpoint: str | None

    def fits(self, req: RecordedRequest) -> bool:
        if self.endpoint is not None and req.path != self.endpoint:
            return False
        if self.match is None:
            return True
        if callable(self.match):
            return bool(self.match(req))
        # the raw body has JSON escapes (e.g. "\\n"), so also look in the message texts
        texts = [content_text(m.get("content")) for m in req.messages if isinstance(m, dict)]
        texts.append(req.last_user_text if req.path == COMPLETIONS else "")
        return self.match in req.text or any(self.match in t for t in texts)


def echo(req: RecordedRequest) -> Reply:
    """The built-in default responder: ``"echo: <last user message text>"``."""
    return Reply(content=f"echo: {req.last_user_text}")


def _error_body(status: int, message: str | None = None) -> dict[str, Any]:
    kind = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}.get(
        status, "server_error" if status >= 500 else "invalid_request_error"
    )
    code = {429: "rate_limit_exceeded", 404: "not_found"}.get(status)
    message = message or f"Loopback server injected HTTP {status}."
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}
