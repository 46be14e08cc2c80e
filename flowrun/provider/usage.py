"""The usage a server reports, checked; and counted here when the server reports none.

Cost is never invented: a reply without ``usage`` (some OpenAI-compatible servers send none,
and llama.cpp's server sends no usage chunk when streaming) is not $0. Its tokens are counted
locally with tiktoken (the request as sent, the reply as received) and the call is marked
approximate; under a budget it is charged its reserved worst case (``engine.services``).
Counts no server can mean (negative, fractional, or more than ``MAX_TOKENS`` in one call)
are a server error, not a number to add to a bill.
"""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Any

from flowrun.errors import ModelCallError
from flowrun.results import Usage

#: More tokens than any model reads or writes in one call (context windows are ~2M at most).
MAX_TOKENS = 100_000_000


def checked_count(name: str, value: Any) -> int:
    """A token count from a reply's usage (``None`` -> 0); ModelCallError if it is impossible."""
    if type(value) is int and 0 <= value <= MAX_TOKENS:  # (what every server sends)
        return value
    if value is None:
        return 0
    number = value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        number = math.nan
    if not math.isfinite(number) or number < 0 or number != int(number) or number > MAX_TOKENS:
        raise ModelCallError(
            f"the server reported impossible usage ({name}={value!r}); its reply is not "
            "trusted (expected a whole number of tokens from 0 to "
            f"{MAX_TOKENS:,})",
            answered=True,
        )
    return int(number)


def count_missing_chat(request: dict[str, Any], reply: Any) -> Usage:
    """Usage of a chat reply that came without any, counted with tiktoken (approximate)."""
    from flowrun.provider.tokens import count_request, count_text

    model = request.get("model")
    completion = count_text(reply.content or "", model) + count_text(reply.refusal or "", model)
    for call in reply.tool_calls or []:
        completion += count_text(json.dumps(call.get("function", {})), model)
    return Usage(prompt_tokens=count_request(request, model), completion_tokens=completion)


def count_missing_embed(request: dict[str, Any]) -> Usage:
    """Usage of an embeddings reply that came without any, counted with tiktoken."""
    from flowrun.provider.tokens import count_text

    texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
    model = request.get("model")
    return Usage(prompt_tokens=sum(count_text(str(t), model) for t in texts))


def usage_from(raw: Any) -> Usage:
    """Usage from an SDK usage object (or dict), including cached and reasoning tokens.

    Raises ``ModelCallError`` for counts no server can mean (negative, not whole numbers, or
    beyond ``MAX_TOKENS``). ``None`` (no usage sent) is the caller's to count: see
    ``count_missing_chat`` and ``count_missing_embed``.
    """
    if raw is None:
        return Usage()
    # (a reply's JSON is a dict: its fields are read without a call each)
    get = raw.get if isinstance(raw, dict) else partial(_detail, raw)
    prompt, completion = get("prompt_tokens"), get("completion_tokens")
    cached = _detail(get("prompt_tokens_details") or {}, "cached_tokens")
    reasoning = _detail(get("completion_tokens_details") or {}, "reasoning_tokens")
    return Usage(
        checked_count("prompt_tokens", prompt),
        checked_count("completion_tokens", completion),
        checked_count("cached_tokens", cached),
        checked_count("reasoning_tokens", reasoning),
    )


def _detail(obj: Any, key: str) -> Any:
    """``obj``'s ``key``: a dict's item or an SDK object's attribute (None if it has none)."""
    return obj.get(key) if isinstance(obj, dict) else getattr(obj, key, None)
