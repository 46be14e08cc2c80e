"""A loopback, OpenAI-compatible HTTP server for offline tests of workflows.

Scripted replies, error injection, latency, request recording and (optionally)
validation of every request against the official OpenAPI spec::

    with LoopbackServer() as server:
        server.add(Reply(content="hi"))
        client = OpenAI(base_url=server.url, api_key="sk-test")

Stdlib-only at import time (the optional validator imports ``jsonschema`` lazily).
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
import struct
import threading
import time
import traceback
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from flowrun.provider.mock import (
    DEFAULT_DIMENSIONS,
    content_text,
    embed_text,
    split_text,
    word_count,
)
from flowrun.testing.completions import completion_chunks, text_completion
from flowrun.testing.http_server import Handler, HTTPServer
from flowrun.testing.openapi import REQUEST_SCHEMAS, OpenAPIValidator
from flowrun.testing.replies import (
    CHAT,
    COMPLETIONS,
    EMBEDDINGS,
    MODELS,
    Matcher,
    RecordedRequest,
    Reply,
    Responder,
    ToolCall,
    _Entry,
    _error_body,
    echo,
)

if TYPE_CHECKING:
    from flowrun.testing.batches import BatchAPI

__all__ = [
    "EMBEDDINGS",
    "LoopbackServer",
    "embed_text",
    "OpenAPIValidator",
    "RecordedRequest",
    "Reply",
    "ToolCall",
    "validate_every_server",
]

_default_validator: OpenAPIValidator | None = None


def validate_every_server(validator: OpenAPIValidator | None) -> None:
    """Make every ``LoopbackServer`` created without ``validator=`` check requests with this one.

    A test suite calls it once per session, so that servers it does not create itself (that of
    the ``flowrun_server`` fixture) check every request too; so does ``flowrun run --mock``'s
    in-process model (``provider.mock.check_every_request``).
    """
    from flowrun.provider.mock import check_every_request

    global _default_validator
    _default_validator = validator
    check_every_request(validator.validate if validator is not None else None)


class LoopbackServer:
    """An OpenAI-compatible server on ``127.0.0.1`` (random port), served from a daemon thread.

    Use as a context manager, or call :meth:`start` / :meth:`stop`. A request that breaks the
    OpenAPI spec of ``validator`` (default: the one given to :func:`validate_every_server`) is
    answered 400 and listed in ``spec_violations``.
    """

    def __init__(
        self, latency: float = 0.0, validator: OpenAPIValidator | None = None, port: int = 0
    ) -> None:
        self.latency = latency
        self.requested_port = port  #: 0: a free port chosen at start
        self.validator = validator if validator is not None else _default_validator
        self.default: Reply | Responder = echo
        self.requests: list[RecordedRequest] = []
        self.spec_violations: list[str] = []
        self.errors: list[str] = []  #: tracebacks of responders that raised (answered with 500)
        self._entries: list[_Entry] = []
        self._lock = threading.RLock()
        self._ids = itertools.count(1)
        self._httpd: HTTPServer | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> LoopbackServer:
        if self._httpd is None:
            self._httpd = HTTPServer(("127.0.0.1", self.requested_port), Handler)
            self._httpd.app = self
            serve = functools.partial(self._httpd.serve_forever, poll_interval=0.05)
            threading.Thread(target=serve, name="flowrun-loopback", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("LoopbackServer is not started")
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """Base URL including ``/v1``; use as ``OPENAI_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}/v1"

    def env(self) -> dict[str, str]:
        return {"OPENAI_BASE_URL": self.url, "OPENAI_API_KEY": "sk-test-loopback"}

    # -- scripting ---------------------------------------------------------------
    def add(
        self,
        reply: Reply | Responder,
        *,
        match: str | Matcher | None = None,
        times: int | None = 1,
        endpoint: str | None = CHAT,
    ) -> None:
        """Script a reply (or a ``RecordedRequest -> Reply`` callable).

        Used by the first request whose raw body contains ``match`` (or for which
        ``match(req)`` is truthy) on ``endpoint`` (``"/chat/completions"`` by default, or
        ``"/completions"``, ``"/embeddings"``; ``None`` = any); ``times=None`` = forever.
        """
        if times is not None and times < 1:
            raise ValueError(f"times must be >= 1 or None, got {times}")
        with self._lock:
            self._entries.append(_Entry(reply, match, times, endpoint))

    @property
    def pending(self) -> int:
        """Number of scripted entries not yet used up."""
        with self._lock:
            return len(self._entries)

    @property
    def batch_api(self) -> BatchAPI:
        """The Files and Batches endpoints' state and scripting (see ``flowrun.testing.batches``)."""
        with self._lock:
            if getattr(self, "_batch_api", None) is None:
                from flowrun.testing.batches import BatchAPI

                self._batch_api = BatchAPI(self)
            return self._batch_api

    def requests_to(self, suffix: str) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if r.path.endswith(suffix)]

    def reset(self) -> None:
        """Forget scripted replies, recorded requests and spec violations."""
        with self._lock:
            self._entries.clear()
            self.requests.clear()
            self.spec_violations.clear()

    def _take(self, req: RecordedRequest) -> Reply | Responder | None:
        with self._lock:
            for i, entry in enumerate(self._entries):
                if entry.fits(req):
                    if entry.times is not None:
                        entry.times -= 1
                        if entry.times <= 0:
                            del self._entries[i]
                    return entry.responder
        return None

    def _next_id(self, prefix: str) -> str:
        with self._lock:
            return f"{prefix}{next(self._ids)}"

    # -- request handling ------------------------------------------------------------
    def record(
        self, method: str, target: str, headers: dict[str, str], raw: bytes
    ) -> RecordedRequest:
        """Log one request as it arrived (``target`` is the path with its query string)."""
        path, _, query = target.partition("?")
        path = re.sub(r"^/v1(?=/|$)", "", path) or "/"
        # Azure OpenAI's URLs: /openai/deployments/{deployment}/chat/completions?api-version=
        path = re.sub(r"^/openai/deployments/[^/]+(?=/)", "", path)
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = None
        req = RecordedRequest(method, path, headers, body, raw, query, time.monotonic())
        with self._lock:
            self.requests.append(req)
        return req

    def _dispatch(self, req: RecordedRequest) -> tuple[int, Any, dict[str, str]]:
        """Route a request: ``(status, JSON payload or list of stream chunks, headers)``."""
        path, body = req.path, req.body
        if req.method == "POST" and path in REQUEST_SCHEMAS and self.validator is not None:
            errors = self.validator.validate(path, body)
            if errors:
                with self._lock:
                    self.spec_violations.extend(f"POST {path}: {e}" for e in errors)
                return 400, _error_body(400, "; ".join(errors)), {}
        if req.method == "GET" and path == "/models":
            data = [
                {"id": m, "object": "model", "created": 0, "owned_by": "loopback"} for m in MODELS
            ]
            return 200, {"object": "list", "data": data}, {}
        if path.startswith(("/files", "/batches")):
            return self.batch_api.dispatch(req)
        if req.method != "POST" or path not in (CHAT, COMPLETIONS, EMBEDDINGS):
            return 404, _error_body(404, f"Unknown endpoint: {req.method} /v1{path}"), {}
        if not isinstance(body, dict):
            return 400, _error_body(400, "The request body is not a JSON object."), {}
        try:
            reply = self._respond(req)
            delay = reply.latency if reply and reply.latency is not None else self.latency
            if delay > 0:
                time.sleep(delay)
            headers = dict(reply.headers) if reply else {}
            if reply and reply.retry_after is not None:
                headers["Retry-After"] = f"{reply.retry_after:g}"
            if reply and reply.status != 200:
                return reply.status, _error_body(reply.status, reply.error), headers
            if path == EMBEDDINGS:
                return 200, self._embeddings(req, reply), headers
            assert reply is not None
            if path == COMPLETIONS:
                whole = text_completion(req, reply, self._next_id)
                if not body.get("stream"):
                    return 200, whole, headers
                usage = bool((body.get("stream_options") or {}).get("include_usage"))
                return 200, list(completion_chunks(whole, usage)), headers
            completion, calls = self._chat(req, reply)
            if reply.no_usage:
                completion["usage"] = None
            if not body.get("stream"):
                return 200, completion, headers
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            include_usage = include_usage and not reply.no_usage
            return 200, list(self._chunks(completion, calls, include_usage)), headers
        except Exception:
            with self._lock:
                self.errors.append(traceback.format_exc())
            message = "Loopback responder failed:\n" + traceback.format_exc(limit=3)
            return 500, _error_body(500, message), {"x-should-retry": "false"}

    def _respond(self, req: RecordedRequest) -> Reply | None:
        """Pick the reply for a chat, completions or embeddings request (``None`` = compute
        a default)."""
        responder = self._take(req)
        if responder is None:
            if req.path not in (CHAT, COMPLETIONS):
                return None
            responder = self.default
        reply = responder(req) if callable(responder) else responder
        return Reply(content=reply) if isinstance(reply, str) else reply

    def _chat(self, req: RecordedRequest, reply: Reply) -> tuple[dict[str, Any], list[dict]]:
        """Build the ChatCompletion object and its tool calls (with ids assigned)."""
        content, over = reply.text, reply.usage or {}
        calls = [
            {"id": tc.id or self._next_id("call_"), "type": "function"}
            | {"function": {"name": tc.name, "arguments": tc.arguments_json}}
            for tc in reply.tool_calls or []
        ]
        message = {"role": "assistant", "content": content, "refusal": reply.refusal}
        message |= {"annotations": [], **({"tool_calls": calls} if calls else {})}
        legacy = reply.function_call
        if legacy is not None:
            message["function_call"] = {"name": legacy.name, "arguments": legacy.arguments_json}
        texts = [content_text(m.get("content")) for m in req.messages if isinstance(m, dict)]
        prompt = over.get("prompt_tokens", sum(word_count(t) + 3 for t in texts))
        reasoning = over.get("reasoning_tokens", 0)
        out_words = word_count(content) + word_count(reply.refusal)
        out_words += sum(word_count(c["function"]["arguments"]) + 1 for c in calls)
        out_words += word_count(legacy.arguments_json) + 1 if legacy is not None else 0
        completion = over.get("completion_tokens", max(1, out_words) + reasoning)
        usage = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": over.get("total_tokens", prompt + completion),
            "prompt_tokens_details": {"cached_tokens": over.get("cached_tokens", 0)}
            | {"audio_tokens": 0},
            "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": 0}
            | {"accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0},
        }
        finish = reply.finish_reason or (
            "tool_calls" if calls else "function_call" if legacy is not None else "stop"
        )
        choice = {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
        n = req.body.get("n") if not req.body.get("stream") else 1
        count = n if isinstance(n, int) and n > 1 else 1  # `n` choices, the same reply each
        if count > 1:
            usage["completion_tokens"] = completion * count
            usage["total_tokens"] = over.get("total_tokens", prompt + completion * count)
        return {
            "id": self._next_id("chatcmpl-loopback-"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": reply.model or req.body.get("model") or "gpt-4o-mini",
            "system_fingerprint": "fp_loopback",
            "service_tier": "default",
            "choices": [choice | {"index": i} for i in range(count)],
            "usage": usage,
        }, calls

    def _chunks(self, completion: dict[str, Any], calls: list[dict], usage: bool) -> Iterator[dict]:
        """Yield ``chat.completion.chunk`` objects the way the OpenAI API streams them."""
        keys = ("id", "created", "model", "system_fingerprint", "service_tier")
        head = {k: completion[k] for k in keys} | {"object": "chat.completion.chunk"}
        head |= {"usage": None} if usage else {}
        choice = completion["choices"][0]
        message = choice["message"]

        def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
            return head | {
                "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
            }

        first = "" if message["content"] is not None else None
        yield chunk({"role": "assistant", "content": first, "refusal": None})
        for piece in split_text(message["content"] or ""):
            yield chunk({"content": piece})
        for piece in split_text(message["refusal"] or ""):
            yield chunk({"refusal": piece})
        if "function_call" in message:
            yield chunk({"function_call": message["function_call"]})
        for index, call in enumerate(calls):
            fn = {"name": call["function"]["name"], "arguments": ""}
            opening = {"index": index, "id": call["id"], "type": "function", "function": fn}
            yield chunk({"tool_calls": [opening]})
            for piece in split_text(call["function"]["arguments"]):
                yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
        yield chunk({}, choice["finish_reason"])
        if usage:
            yield head | {"choices": [], "usage": completion["usage"]}

    def _embeddings(self, req: RecordedRequest, reply: Reply | None) -> dict[str, Any]:
        body = req.body
        raw = body.get("input", "")
        if isinstance(raw, str) or (isinstance(raw, list) and raw and isinstance(raw[0], int)):
            raw = [raw]
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in raw]
        dims = int(body.get("dimensions") or DEFAULT_DIMENSIONS)
        data = []
        if reply and reply.embeddings is not None:  # a server that answers other shapes
            texts = [""] * len(reply.embeddings)
        for i, text in enumerate(texts):
            vec = (
                reply.embeddings[i]
                if reply and reply.embeddings is not None
                else reply.embedding
                if reply and reply.embedding is not None
                else embed_text(text, dims)
            )
            value: Any = vec
            if body.get("encoding_format") == "base64":  # little-endian float32, like the API
                value = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode("ascii")
            data.append({"object": "embedding", "index": i, "embedding": value})
        tokens = sum(len(x) if isinstance(x, list) else max(1, word_count(x)) for x in raw)
        model = (reply.model if reply else None) or body.get("model") or "text-embedding-3-small"
        usage = {"prompt_tokens": tokens, "total_tokens": tokens}
        return {"object": "list", "data": data, "model": model, "usage": usage}
