"""JSON texts flowrun writes many of (batch lines, transcripts, history rows, output lines),
and reads many of (Batch API result lines).

``json_encoder(...)`` gives a function that returns exactly what ``json.dumps(value, ...)``
returns with the same arguments, without what ``json.dumps`` (and ``JSONEncoder.encode``)
does again on every call: build an encoder, and a C encoder inside it. For a small value that
set-up is a third of the time. The values are flowrun's own trees of plain data: there is no
circular-reference check (a cycle ends in ``RecursionError`` instead of ``ValueError``).

May import: nothing in flowrun.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any


def json_encoder(
    *,
    ensure_ascii: bool = True,
    separators: tuple[str, str] = (", ", ": "),
    default: Callable[[Any], Any] | None = None,
) -> Callable[[Any], str]:
    """``lambda value: json.dumps(value, ensure_ascii=..., separators=..., default=...)``."""
    python = json.JSONEncoder(
        ensure_ascii=ensure_ascii, separators=separators, default=default, check_circular=False
    )
    make = json.encoder.c_make_encoder
    if make is None:  # a Python without the json module's C encoder
        return python.encode
    strings = (
        json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
    )
    item_separator, key_separator = separators
    chunks = make(
        None,  # no circular-reference markers
        python.default,
        strings,
        None,  # no indent
        key_separator,
        item_separator,
        False,  # sort_keys
        False,  # skipkeys
        True,  # allow_nan
    )

    def encode(value: Any) -> str:
        return "".join(chunks(value, 0))

    return encode


_SCAN = json.decoder.JSONDecoder().scan_once  # the C scanner json.loads runs


def loads(text: str | bytes) -> Any:
    """``json.loads(text)``: the same value, or the same error. A text that is one JSON value
    with nothing around it is scanned straight away, without what ``json.loads`` does around
    the scan (two regex searches for the whitespace before and after it, three calls) on
    every text; anything else (bytes, whitespace, a BOM, an error) is ``json.loads``'s."""
    if isinstance(text, str):
        try:
            value, end = _SCAN(text, 0)
        except StopIteration:  # (not a value at 0: json.loads says why, or skips whitespace)
            return json.loads(text)
        if end == len(text):
            return value
    return json.loads(text)
