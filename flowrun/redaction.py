"""Keeping the API key out of everything flowrun prints or stores.

May import: nothing in flowrun.
"""

from __future__ import annotations

import os
import re

_BEARER = re.compile(r"(?i)(authorization[\"']?\s*[:=]\s*[\"']?bearer\s+)[^\s\"',}]+")
_KEY_SHAPE = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")


def redact(text: str) -> str:
    """``text`` with the API key, bearer tokens and sk-... keys replaced by ``[redacted]``."""
    if not text:
        return text
    key = os.environ.get("OPENAI_API_KEY")
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
    # (the patterns need these words: most text has neither, and a search costs far more)
    if "bearer" in text.lower():
        text = _BEARER.sub(r"\1[redacted]", text)
    return _KEY_SHAPE.sub("[redacted]", text) if "sk-" in text else text
