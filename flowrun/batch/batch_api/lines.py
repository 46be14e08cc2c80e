"""The Batch API's file formats: request lines in, result lines out; ids, limits and splitting.

Pure functions, no I/O. An input line is
``{"custom_id", "method": "POST", "url": "/v1/chat/completions", "body": {...}}``; an output
(or error) line is ``{"id", "custom_id", "response": {"status_code", "request_id", "body"},
"error"}``. A ``custom_id`` names the record, the step (or foreach item), a short hash of the
body and the attempt, e.g. ``r17.classify.3f2a9c1b.a0``, so a re-executed record asks for
the same ids and a retry never reuses one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from flowrun.json_text import json_encoder, loads
from flowrun.provider.client import ChatReply, EmbedReply, ModelCallError, usage_from
from flowrun.provider.client import chat_reply_from_body as chat_reply
from flowrun.redaction import redact

CHAT = "/v1/chat/completions"
EMBEDDINGS = "/v1/embeddings"
MAX_REQUESTS = 50_000  # requests per input file
MAX_BYTES = 200 * 1024 * 1024  # bytes per input file
MAX_EMBEDDING_INPUTS = 50_000  # embedding inputs across the requests of one batch
RETRYABLE_STATUS = frozenset({408, 409, 429, 500, 502, 503, 504})
_DROPPED = ("stream", "stream_options")  # the Batch API does not stream
_REWRITTEN = frozenset({"extra", *_DROPPED})  # the keys batch_body merges in or drops


@dataclass(slots=True)
class Pending:
    """A request waiting for the next wave: its id, its encoded line and its weight."""

    custom_id: str
    line: bytes
    inputs: int = 1  # embedding inputs (for the per-batch input limit)
    #: an upper estimate of the request's input tokens (for the enqueued-token limit): a
    #: token is at least one byte and usually four; a quarter of the line, JSON included
    #: (counted once: a request's tokens are read when it is parked, packed and queued)
    tokens: int = field(init=False)

    def __post_init__(self) -> None:
        self.tokens = len(self.line) // 4 + 1


@dataclass(slots=True)
class Outcome:
    """What a batch said about one request."""

    ok: bool
    reply: ChatReply | EmbedReply | None = None
    error: str | None = None
    retryable: bool = False
    stale: bool = False  # a failure stored by an earlier process: not an answer, ask again


@dataclass(frozen=True)
class Limits:
    """Per-file limits; lower them to test splitting."""

    max_requests: int = MAX_REQUESTS
    max_bytes: int = MAX_BYTES
    max_embedding_inputs: int = MAX_EMBEDDING_INPUTS


def file_tokens(items: list[Pending]) -> int:
    """The estimated input tokens of a file's requests (see ``Pending.tokens``)."""
    return sum([p.tokens for p in items])


def batch_body(request: dict[str, Any]) -> dict[str, Any]:
    """The request body as a batch line carries it: ``extra`` merged in, streaming dropped
    (``request`` itself when it has none of them: the body is only read)."""
    if _REWRITTEN.isdisjoint(request):  # (the usual request)
        return request
    body = {k: v for k, v in request.items() if k not in _DROPPED and k != "extra"}
    body.update(request.get("extra") or {})
    return body


def encode_body(body: dict[str, Any]) -> str:
    """``json.dumps(body, ensure_ascii=False, separators=(",", ":"))``: what the body's digest
    (so its ``custom_id``) is of."""
    return _BODY(body)


def body_digest(body_json: str) -> str:
    return hashlib.blake2b(body_json.encode("utf-8"), digest_size=4).hexdigest()


def custom_id(record: int, label: str, digest: str, attempt: int) -> str:
    """``r{record}.{label}.{digest}.a{attempt}``: the same request always gets the same id."""
    return f"r{record}.{label}.{digest}.a{attempt}"


def encode_line(cid: str, url: str, body_json: str) -> bytes:
    # what json.dumps({"custom_id": cid, "method": "POST", "url": url}) gives, without
    # encoding a dict per request
    head = f'{{"custom_id": {_string(cid)}, "method": "POST", "url": {_string(url)}'
    return f'{head},"body":{body_json}}}'.encode()


_string = json.encoder.encode_basestring  # json.dumps(text, ensure_ascii=False) of a str
_BODY = json_encoder(ensure_ascii=False, separators=(",", ":"))


def pack(
    pending: list[Pending], limits: Limits, max_tokens: int | None = None
) -> list[list[Pending]]:
    """Split one endpoint's and model's requests into files within the limits (and, given
    ``max_tokens``, the enqueued-token limit: no file alone over it), in order."""
    files: list[list[Pending]] = []
    current: list[Pending] = []
    size = inputs = tokens = 0
    for item in pending:
        grows = len(item.line) + 1
        if current and (
            len(current) >= limits.max_requests
            or size + grows > limits.max_bytes
            or inputs + item.inputs > limits.max_embedding_inputs
            or (max_tokens is not None and tokens + item.tokens > max_tokens)
        ):
            files.append(current)
            current, size, inputs, tokens = [], 0, 0, 0
        if grows > limits.max_bytes:
            raise ValueError(
                f"request {item.custom_id} is {grows:,} bytes, more than a batch file may hold "
                f"({limits.max_bytes:,})"
            )
        current.append(item)
        size += grows
        inputs += item.inputs
        tokens += item.tokens
    if current:
        files.append(current)
    return files


def file_bytes(items: list[Pending]) -> bytes:
    return b"\n".join(p.line for p in items) + b"\n"


def parse_result_line(raw: bytes | str) -> tuple[str, Outcome]:
    """``(custom_id, outcome)`` of one output- or error-file line."""
    line = loads(raw)
    cid = line.get("custom_id") or ""
    response = line.get("response") or None
    error = line.get("error") or None
    if response is not None and response.get("status_code") == 200 and error is None:
        body = response.get("body") or {}
        try:
            reply = chat_reply(body) if "choices" in body else embed_reply(body)
            # no usage in the line: the client that knows the request counts it (never $0)
            reply.approximate_usage = body.get("usage") is None
        except (KeyError, TypeError, AttributeError, IndexError, ModelCallError) as exc:
            return cid, Outcome(
                False, error=redact(f"the batch returned an unexpected body: {exc!r}")
            )
        return cid, Outcome(True, reply)  # (by position: keywords would build a dict)
    if response is not None:
        status = int(response.get("status_code") or 0)
        body = response.get("body") or {}
        detail = body.get("error", body) if isinstance(body, dict) else body
        message = detail.get("message") if isinstance(detail, dict) else None
        return cid, Outcome(
            False,
            error=redact(f"API error {status}: {message or json.dumps(body)[:300]}"),
            retryable=status in RETRYABLE_STATUS,
        )
    error = error if isinstance(error, dict) else {"message": str(error)}
    code = error.get("code") or "error"
    return cid, Outcome(
        False, error=redact(f"batch request {code}: {error.get('message') or code}"), retryable=True
    )


def embed_reply(body: dict[str, Any]) -> EmbedReply:
    """An ``EmbedReply`` from an embeddings body; vectors in input order."""
    data = sorted(body["data"], key=lambda d: d.get("index", 0))
    return EmbedReply(
        vectors=[list(d["embedding"]) for d in data],
        usage=usage_from(body.get("usage")),
        model=body.get("model") or "",
        approximate_usage=body.get("usage") is None,
    )
