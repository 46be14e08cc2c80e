"""Token counting with tiktoken (imported lazily), with a warned estimate when it is unavailable."""

from __future__ import annotations

import json
import logging
import math
import threading
from functools import lru_cache
from typing import Any

from flowrun.provider.catalog import model_info
from flowrun.provider.images import data_url_bytes, image_size

log = logging.getLogger("flowrun")
# Per-message overhead of the chat format, as in OpenAI's cookbook ("How to count tokens").
TOKENS_PER_MESSAGE = 3
TOKENS_PER_REPLY = 3
# What an image costs when the model table does not say (gpt-4o's rates).
DEFAULT_IMAGE_RATES = {"base": 85, "tile": 170}
MAX_PATCHES = 1536
# An image of unknown size (an http URL) is counted at its largest: 2048x768 after the API's
# scaling is 4x2 tiles, and a patch-counted image is capped at MAX_PATCHES.
UNKNOWN_SIZE = (2048, 768)

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
                "warning: tiktoken encoding %s could not be loaded (%s); token counts are "
                "approximate (4 characters per token). Set TIKTOKEN_CACHE_DIR to a folder "
                "holding the encodings, or run once with network access.",
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
                    total += count_image(part.get("image_url") or {}, model)
        for call in message.get("tool_calls") or []:
            total += count_text(json.dumps(call.get("function", {})), model)
        if message.get("name"):
            total += 1
    if tools:
        total += count_text(json.dumps(tools), model)
    return total


def count_request(request: dict[str, Any], model: str | None = None) -> int:
    """Prompt tokens of a whole chat request: messages, tools and a structured-output schema."""
    total = count_messages(request["messages"], model, request.get("tools"))
    fmt = request.get("response_format") or {}
    if fmt.get("type") == "json_schema":
        total += count_text(json.dumps(fmt.get("json_schema") or {}), model)
    return total


def count_image(image: dict[str, Any], model: str | None = None) -> int:
    """Prompt tokens of one ``image_url`` part, by the model's rates, its detail and its size.

    A data URL's size is read from the image; a URL's is unknown, so it is counted at the most
    an image can cost (estimates and budgets are worst cases).
    """
    info = model_info(model)
    rates = (info.image_tokens if info else None) or DEFAULT_IMAGE_RATES
    data = data_url_bytes(str(image.get("url", "")))
    size = (image_size(data) if data else None) or UNKNOWN_SIZE
    if "patch" in rates:
        return math.ceil(_patches(*size) * rates["patch"])
    if image.get("detail") == "low":
        return int(rates["base"])
    return int(rates["base"] + rates["tile"] * _tiles(*size))


def _tiles(width: int, height: int) -> int:
    """512px tiles after the API's scaling: fit in 2048x2048, then shortest side at most 768."""
    if max(width, height) > 2048:
        scale = 2048 / max(width, height)
        width, height = width * scale, height * scale
    if min(width, height) > 768:
        scale = 768 / min(width, height)
        width, height = width * scale, height * scale
    return math.ceil(width / 512) * math.ceil(height / 512)


def _patches(width: int, height: int) -> int:
    """32px patches covering the image, scaled down to at most MAX_PATCHES."""
    patches = math.ceil(width / 32) * math.ceil(height / 32)
    if patches <= MAX_PATCHES:
        return patches
    shrink = math.sqrt(32 * 32 * MAX_PATCHES / (width * height))
    shrink *= min(
        math.floor(width * shrink / 32) / (width * shrink / 32),
        math.floor(height * shrink / 32) / (height * shrink / 32),
    )
    return min(MAX_PATCHES, math.ceil(width * shrink / 32) * math.ceil(height * shrink / 32))


def counts_exact(model: str | None) -> bool:
    """Whether ``model``'s counts come from tiktoken (not the 4-characters-per-token estimate)."""
    return _encoding(encoding_name(model)) is not None


def encodings_available() -> bool:
    """Whether real counts (not estimates) are being produced."""
    return _encoding("o200k_base") is not None
