"""Tools of the map-reduce-summary example."""

from __future__ import annotations

import re


def split_text(text: str, max_chars: int = 4000) -> list[str]:
    """Split a text into parts of at most max_chars characters, on paragraph boundaries.

    A paragraph longer than max_chars is cut on sentence ends (or, failing that, hard).

    Args:
        text: The text to split.
        max_chars: Largest part, in characters.
    """
    if max_chars < 1:
        raise ValueError("max_chars must be positive")
    pieces: list[str] = []
    for paragraph in (p.strip() for p in re.split(r"\n\s*\n", text)):
        if not paragraph:
            continue
        if len(paragraph) <= max_chars:
            pieces.append(paragraph)
            continue
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            pieces.extend(sentence[i : i + max_chars] for i in range(0, len(sentence), max_chars))
    parts: list[str] = []
    for piece in pieces:
        if parts and len(parts[-1]) + 2 + len(piece) <= max_chars:
            parts[-1] += "\n\n" + piece
        else:
            parts.append(piece)
    return parts
