"""Transcripts as the run store keeps them: one JSON text per step, each call capped.

Each call's entry (built by ``flowrun.engine.transcripts``) is capped at ``CAP_BYTES`` when
serialized: its longest texts are cut, and the entry says so (``truncated``). The API key is
redacted from the whole text.
"""

from __future__ import annotations

import json
from typing import Any

from flowrun.json_text import json_encoder
from flowrun.redaction import redact

CAP_BYTES = 1_000_000  # one call's entry, serialized
_CUT_MARK = "… [cut {n:,} characters]"
_ENCODER = json_encoder(ensure_ascii=False, default=str)  # json.dumps(..., the same)


def dump_transcript(entries: list[dict[str, Any]], *, redacted: bool = True) -> str:
    """The entries as one JSON text, each capped at ``CAP_BYTES``, the API key redacted
    (``redacted=False``: not yet, for a text that is redacted whole with what holds it)."""
    parts = []
    for entry in entries:
        text = _ENCODER(entry)
        if len(text) > CAP_BYTES:
            text = _ENCODER(cap_entry(entry, len(text)))
        parts.append(text)
    text = "[" + ", ".join(parts) + "]"
    return redact(text) if redacted else text


def cap_entry(entry: dict[str, Any], size: int, cap: int = CAP_BYTES) -> dict[str, Any]:
    """``entry`` with its longest texts cut until it fits ``cap``; marked ``truncated``."""
    limit = cap // 2
    while True:
        cut = _cut(entry, limit)
        cut["truncated"] = {"original_bytes": size, "cap_bytes": cap}
        if len(json.dumps(cut, ensure_ascii=False, default=str)) <= cap or limit < 64:
            return cut
        limit //= 2


def _cut(value: Any, limit: int) -> Any:
    if isinstance(value, str):
        if len(value) <= limit:
            return value
        return value[:limit] + _CUT_MARK.format(n=len(value) - limit)
    if isinstance(value, dict):
        return {k: _cut(v, limit) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        if len(value) > limit:  # a very long list (e.g. many inputs): keep its head
            return [_cut(v, limit) for v in value[:limit]] + [
                _CUT_MARK.format(n=len(value) - limit)
            ]
        return [_cut(v, limit) for v in value]
    return value


def load_transcript(text: str | None) -> list[dict[str, Any]]:
    """Stored entries back as data (an empty list when none were stored)."""
    return json.loads(text) if text else []
