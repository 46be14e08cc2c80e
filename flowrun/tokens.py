"""Token counting with tiktoken (imported lazily), with a warned estimate when it is unavailable."""

from __future__ import annotations

import json
import logging
import threading
from functools import lru_cache
from typing import Any

from .catalog import model_info

log = logging.getLogger("flowrun")
# Per-message overhead of the chat format, as in OpenAI's cookbook ("How to count tokens").
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
# Image tokens by detail: low is a flat 85; high/auto are counted as one 1024x1024 image
# (4 tiles of 170 + 85), since the real size of a URL's image is unknown before the call.
IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}

_warned = threading.Event()


@lru_cache(maxsize=4)
def _encoding(name: str) -> Any | None:
    try:
        import tiktoken

        return tiktoken.get_encoding(name)
    except Exception as exc:  # offline without a cache, or tiktoken missing
        if not _warned.is_set():
            _warned.set()
            log.warning(
                "tiktoken encoding %s could not be loaded (%s); token counts are estimates "
                "(4 characters per token). Set TIKTOKEN_CACHE_DIR to a folder holding the encodings.",
                name,
                type(exc).__name__,
            )
        return None


def encoding_name(model: str | None) -> str:
    info = model_info(model)
    return info.encoding if info else "o200k_base"


def count_text(text: str, model: str | None = None) -> int:
    """Tokens in ``text`` for ``model`` (an estimate if tiktoken cannot load)."""
    enc = _encoding(encoding_name(model))
    if enc is None:
        return max(1, (len(text) + 3) // 4) if text else 0
    return len(enc.encode(text, disallowed_special=()))


def count_messages(
    messages: list[dict[str, Any]],
    model: str | None = None,
    tools: list[dict[str, Any]] | None = None,
) -> int:
    """Prompt tokens of a chat request: message text, per-message overhead, images and tools."""
    total = TOKENS_PER_REPLY
    for message in messages:
        total += TOKENS_PER_MESSAGE
        content = message.get("content")
        if isinstance(content, str):
            total += count_text(content, model)
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "text":
                    total += count_text(part.get("text", ""), model)
                elif part.get("type") == "image_url":
                    detail = (part.get("image_url") or {}).get("detail") or "auto"
                    total += IMAGE_TOKENS.get(detail, IMAGE_TOKENS["auto"])
        for call in message.get("tool_calls") or []:
            total += count_text(json.dumps(call.get("function", {})), model)
        if message.get("name"):
            total += 1
    if tools:
        total += count_text(json.dumps(tools), model)
    return total


def encodings_available() -> bool:
    """Whether real counts (not estimates) are being produced."""
    return _encoding("o200k_base") is not None
