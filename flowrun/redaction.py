"""Keeping the API key out of everything flowrun prints or stores.

May import: nothing in flowrun.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable

_BEARER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?bearer\s+)[^\s\"',}]+")
_KEY_SHAPE = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")


def redact(text: str) -> str:
    """``text`` with the API key, bearer tokens and sk-... keys replaced by ``[redacted]``."""
    return _redact(text, os.environ.get("OPENAI_API_KEY")) if text else text


def redact_each(texts: Iterable[str]) -> list[str]:
    """``[redact(text) for text in texts]``, the key read once (many texts stored at once)."""
    key = os.environ.get("OPENAI_API_KEY")
    return [_redact(text, key) if text else text for text in texts]


def _redact(text: str, key: str | None) -> str:
    keyish = "sk-" in text  # (one pass: an OpenAI key starts so, and most text has none)
    if key and len(key) >= 4 and (keyish or not key.startswith("sk-")):
        text = text.replace(key, "[redacted]")
    # (the patterns need these words: most text has neither, and a search costs far more)
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1[redacted]", text)
    return _KEY_SHAPE.sub("[redacted]", text) if keyish and _starts_a_word(text, "sk-") else text


def _starts_a_word(text: str, prefix: str) -> bool:
    r"""Whether ``prefix`` occurs at the start of a word (``\bprefix``) in ``text``. The key
    pattern's leading ``\b`` makes the regex try every position of the text (~12 us per KB)
    once "sk-" is anywhere in it, as in "task-" or "risk-", which cannot start a key."""
    before = text.split(prefix)[:-1]  # the text before each occurrence
    # (str.isalnum() or "_" is exactly what \w matches)
    return any(not b or not (b[-1].isalnum() or b[-1] == "_") for b in before)
