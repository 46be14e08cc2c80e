"""``flowrun run --mock``: an in-process fake model, offline and free (a ``ModelClient``).

Text replies echo the prompt; structured-output requests get a small instance that validates
against the step's schema (the workflow's own schema when the client is given the workflow,
so the constraints strict mode leaves out, such as ``minLength``, hold too); JSON mode gets
the instance of the schema written into the prompt, or a small object. Embeddings are
deterministic vectors of the text's trigrams. Usage counts words, as the loopback server does.
No server, no socket, no environment variable: the client answers in the process.

``check_every_request(check)`` makes every ``MockClient`` created after it check the requests
it receives (the test suite passes its OpenAPI validator, as it does to every loopback server).
"""

from __future__ import annotations

import json
import math
import re
import struct
import zlib
from collections.abc import Callable
from typing import Any

from flowrun.errors import ModelCallError
from flowrun.provider.interface import ChatReply, EmbedReply
from flowrun.provider.schema_examples import example_instance
from flowrun.results import Usage

__all__ = [
    "DEFAULT_DIMENSIONS",
    "MockClient",
    "check_every_request",
    "embed_text",
    "example_instance",
    "mock_text",
]

CHAT = "/chat/completions"
EMBEDDINGS = "/embeddings"
DEFAULT_DIMENSIONS = 1536
# What extract.py writes into the prompt when a schema cannot use strict structured output.
_SCHEMA_IN_PROMPT = "validates against this JSON schema:\n"

#: ``check(path, body) -> problems``; an empty list means the request is valid.
RequestCheck = Callable[[str, dict[str, Any]], list[str]]
_default_check: RequestCheck | None = None


def check_every_request(check: RequestCheck | None) -> None:
    """Make every ``MockClient`` created from now on check its requests with ``check``."""
    global _default_check
    _default_check = check


class MockClient:
    """The fake model of ``--mock``; ``workflow`` (a ``LoadedWorkflow``) lends its full schemas."""

    #: its replies cost nothing and mean nothing: runs through it are reported as mock runs
    mock = True

    def __init__(self, workflow: Any = None, *, check: RequestCheck | None = None) -> None:
        self.schemas = _workflow_schemas(workflow)
        self.check = check if check is not None else _default_check
        self.spec_violations: list[str] = []  #: requests ``check`` refused (each answered 400)

    async def chat(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        body = self._checked(CHAT, request)
        content = mock_text(body, self.schemas)
        if on_text is not None and body.get("stream"):
            for piece in split_text(content):
                on_text(piece)
        texts = [content_text(m.get("content")) for m in _messages(body)]
        usage = Usage(sum(word_count(t) + 3 for t in texts), max(1, word_count(content)))
        model = body.get("model") or "gpt-4o-mini"
        return ChatReply(content, finish_reason="stop", usage=usage, model=model)

    async def embed(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> EmbedReply:
        body = self._checked(EMBEDDINGS, request)
        raw = body.get("input", "")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            raw = [raw]
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        dims = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
        vectors = [embed_text(text, dims) for text in texts]
        if body.get("encoding_format") != "float":  # the SDK asks for float32 (base64)
            vectors = [
                list(struct.unpack(f"<{len(v)}f", struct.pack(f"<{len(v)}f", *v))) for v in vectors
            ]
        tokens = sum(len(x) if isinstance(x, list) else max(1, word_count(x)) for x in raw)
        model = body.get("model") or "text-embedding-3-small"
        return EmbedReply(vectors, Usage(prompt_tokens=tokens), model)

    async def aclose(self) -> None:
        return None

    def _checked(self, path: str, request: dict[str, Any]) -> dict[str, Any]:
        """The body as it would be sent (``extra`` merged in), refused if ``check`` finds problems."""
        body = {k: v for k, v in request.items() if k != "extra"} | (request.get("extra") or {})
        if self.check is not None:
            problems = self.check(path, body)
            if problems:
                self.spec_violations.extend(f"POST {path}: {e}" for e in problems)
                raise ModelCallError(f"API error 400: {'; '.join(problems)}", status=400)
        return body


def mock_text(body: dict[str, Any], schemas: dict[str, Any] | None = None) -> str:
    """The fake model's answer to a chat request body (``schemas``: original schemas by name)."""
    fmt = body.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        spec = fmt.get("json_schema") or {}
        schema = (schemas or {}).get(spec.get("name")) or spec.get("schema") or {}
        return json.dumps(example_instance(schema))
    if fmt.get("type") == "json_object":
        schema = _schema_in_prompt(body)
        if schema is not None:
            return json.dumps(example_instance(schema))
        return json.dumps({"echo": last_user_text(body)})
    return f"echo: {last_user_text(body)}"


def embed_text(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Deterministic, L2-normalized signed hashing of lowercased character trigrams."""
    vec = [0.0] * dimensions
    padded = f"  {' '.join(text.lower().split())}  "
    for i in range(len(padded) - 2):
        h = zlib.crc32(padded[i : i + 3].encode("utf-8"))
        vec[h % dimensions] += 1.0 if (h >> 31) & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    return [v / norm for v in vec] if norm else [1.0] + [0.0] * (dimensions - 1)


def content_text(content: Any) -> str:
    """A message's text: string content, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            p.get("text", "") if isinstance(p, dict) else str(p)
            for p in content
            if isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str))
        )
    return ""


def last_user_text(body: dict[str, Any]) -> str:
    """Text of the last user message of a chat request body."""
    for message in reversed(_messages(body)):
        if message.get("role") == "user":
            return content_text(message.get("content"))
    return ""


def _messages(body: Any) -> list[dict[str, Any]]:
    messages = body.get("messages") if isinstance(body, dict) else None
    return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []


def word_count(text: str | None) -> int:
    return len(text.split()) if text else 0


def split_text(text: str, parts: int = 4) -> list[str]:
    """Split text into up to ``parts`` non-empty pieces that concatenate back to it."""
    if not text:
        return []
    size = max(1, -(-len(text) // parts))
    return [text[i : i + size] for i in range(0, len(text), size)]


def _schema_in_prompt(body: dict[str, Any]) -> dict[str, Any] | None:
    for message in _messages(body):
        content = message.get("content")
        if isinstance(content, str) and _SCHEMA_IN_PROMPT in content:
            try:
                schema = json.loads(content.split(_SCHEMA_IN_PROMPT, 1)[1])
            except ValueError:
                return None
            return schema if isinstance(schema, dict) else None
    return None


def _workflow_schemas(workflow: Any) -> dict[str, Any]:
    """The workflow's own extract schemas, by the name strict mode gives them."""
    schemas: dict[str, Any] = {}
    for (sid, kind), schema in (getattr(workflow, "schemas", None) or {}).items():
        if kind == "schema":
            schemas[re.sub(r"[^A-Za-z0-9_-]", "_", sid)[:64]] = schema
    return schemas
