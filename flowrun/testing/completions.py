"""The loopback server's legacy completions endpoint (``POST /v1/completions``).

flowrun itself never calls it; promptflow flows' own Python does (``standard/basic`` calls
``client.completions.create``), so the loopback server answers it the way the OpenAI API does:
a ``text_completion`` object whose one choice's ``text`` is the scripted reply's text, or, with
``stream: true``, the same objects as server-sent events (the final one with the usage when
``stream_options.include_usage`` is set). The default reply echoes the prompt.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from flowrun.provider.mock import split_text, word_count
from flowrun.testing.replies import RecordedRequest, Reply


def text_completion(
    req: RecordedRequest, reply: Reply, next_id: Callable[[str], str]
) -> dict[str, Any]:
    """The ``text_completion`` object answering ``req`` with ``reply``'s text."""
    text = reply.text or ""
    if req.body.get("echo"):
        text = req.last_user_text + text
    over = reply.usage or {}
    prompt = over.get("prompt_tokens", max(1, word_count(req.last_user_text)))
    tokens = over.get("completion_tokens", max(1, word_count(reply.text or "")))
    choice = {
        "text": text,
        "index": 0,
        "logprobs": None,
        "finish_reason": reply.finish_reason or "stop",
    }
    return {
        "id": next_id("cmpl-loopback-"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": reply.model or req.body.get("model") or "gpt-3.5-turbo-instruct",
        "system_fingerprint": "fp_loopback",
        "choices": [choice],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": tokens,
            "total_tokens": over.get("total_tokens", prompt + tokens),
        },
    }


def completion_chunks(whole: dict[str, Any], include_usage: bool) -> Iterator[dict[str, Any]]:
    """``whole`` streamed: the text in pieces, then the finish reason (and the usage)."""
    head = {k: v for k, v in whole.items() if k not in ("choices", "usage")}
    choice = whole["choices"][0]
    for piece in split_text(choice["text"]) or [""]:
        yield head | {"choices": [choice | {"text": piece, "finish_reason": None}]}
    yield head | {"choices": [choice | {"text": ""}]}
    if include_usage:
        yield head | {"choices": [], "usage": whole["usage"]}
