"""Transcripts: what each model call sent and what came back, kept with its step.

An entry is built on the model-call path (``Services.chat`` / ``Services.embed``) from the
request and the reply, without copying what it does not change: images become a reference
(their type and size, never the base64 data), embedding vectors become their count and size.
The run store serializes them (``flowrun.store.transcripts``: capped, redacted).
"""

from __future__ import annotations

from typing import Any


def chat_entry(
    request: dict[str, Any],
    reply: Any = None,
    *,
    latency_s: float,
    retries: int = 0,
    error: str | None = None,
    cached: bool = False,
) -> dict[str, Any]:
    """One chat call: the request (messages with roles, tools, parameters) and the reply."""
    sent = dict(request)  # (the messages go last, copied below)
    messages = sent.pop("messages", None)
    sent["messages"] = list(map(_message, messages or ()))
    got = None
    if reply is not None:
        got = {
            "content": reply.content,
            "tool_calls": list(reply.tool_calls),
            "refusal": reply.refusal,
            "finish_reason": reply.finish_reason,
            "usage": reply.usage.to_dict(),
            "model": reply.model,
        }
    return _entry("chat", sent, got, latency_s, retries, error, cached)


def embed_entry(
    request: dict[str, Any],
    reply: Any = None,
    *,
    latency_s: float,
    retries: int = 0,
    error: str | None = None,
    cached: bool = False,
) -> dict[str, Any]:
    """One embeddings call: the inputs sent, and how many vectors (of what size) came back."""
    got = None
    if reply is not None:
        vectors = reply.vectors
        got = {
            "vectors": len(vectors),
            "dimensions": len(vectors[0]) if vectors else 0,
            "usage": reply.usage.to_dict(),
            "model": reply.model,
        }
    return _entry("embed", dict(request), got, latency_s, retries, error, cached)


def _entry(
    kind: str,
    sent: dict[str, Any],
    got: dict[str, Any] | None,
    latency_s: float,
    retries: int,
    error: str | None,
    cached: bool,
) -> dict[str, Any]:
    """A call's transcript entry: what was sent, what came back (if it did), and how."""
    entry: dict[str, Any] = {
        "kind": kind,
        "request": sent,
        "latency_s": round(latency_s, 4),
        "retries": retries,
    }
    if got is not None:
        entry["reply"] = got
    if error is not None:
        entry["error"] = error
    if cached:
        entry["cached"] = True
    return entry


def _message(message: dict[str, Any]) -> dict[str, Any]:
    content = message.get("content")
    if not isinstance(content, list) or not any(
        isinstance(p, dict) and p.get("type") in ("image_url", "input_audio", "file")
        for p in content
    ):
        return message
    return {**message, "content": [_part(p) for p in content]}


def _part(part: Any) -> Any:
    if not isinstance(part, dict) or part.get("type") != "image_url":
        if isinstance(part, dict) and part.get("type") in ("input_audio", "file"):
            return {"type": part["type"], "omitted": True}
        return part
    image = part.get("image_url") or {}
    url = str(image.get("url") or "")
    ref: dict[str, Any] = {"type": "image_url"}
    if url.startswith("data:"):
        head, _, data = url.partition(",")
        ref["image"] = {
            "media_type": head[5:].split(";")[0] or "unknown",
            "bytes": len(data) * 3 // 4 - data[-2:].count("="),  # decoded size of the base64
        }
    else:
        ref["image"] = {"url": url}
    if image.get("detail"):
        ref["image"]["detail"] = image["detail"]
    return ref
