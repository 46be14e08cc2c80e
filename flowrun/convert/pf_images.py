"""promptflow's image markers in a chat prompt -> a flowrun chat step's ``images:``.

In a chat prompt, promptflow turns ``![image]({{var}})`` (its regex: ``{{...}}`` around one
name, no spaces inside) into an image part of the message the marker is in. flowrun sends a
chat step's ``images:`` with the last user message, so a marker converts when it is in the last
user message, outside any ``{% %}`` block, and reads a variable the node binds: it is removed
from the text (with its line, when nothing else is on it) and its value becomes an entry of
``images:``. Other markers stay in the text and are reported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment

_MARKER = re.compile(r"!\[(\s*image\s*)\]\(\{\{(\s*[^\s{}]+\s*)\}\}\)")
_ROLE_LINE = re.compile(
    r"^\s*#?\s*(system|user|assistant|function|tool)\s*:\s*\n", re.IGNORECASE | re.MULTILINE
)
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
_OPENS = {"for", "if", "macro", "call", "filter", "with", "block", "autoescape", "trans"}
_LEXER_ENV = Environment(trim_blocks=True, keep_trailing_newline=True)


@dataclass
class Images:
    """A prompt with its convertible image markers taken out."""

    source: str
    variables: list[str] = field(default_factory=list)  #: in order, one per marker
    unconverted: list[tuple[str, str]] = field(default_factory=list)  #: (marker, reason)


def has_markers(source: str) -> bool:
    return _MARKER.search(source) is not None


def take_images(source: str, bound: set[str], assigned: set[str]) -> Images:
    """Take the convertible markers out of ``source``; ``bound`` are the node's variables,
    ``assigned`` the names the template sets itself (a loop target, ``{% set %}``)."""
    markers = list(_MARKER.finditer(source))
    if not markers:
        return Images(source)
    depth_at = _depths(source)
    roles = [(m.start(), m.group(1).lower()) for m in _ROLE_LINE.finditer(source)]
    last_at, last_role = roles[-1] if roles else (-1, "")
    out = Images(source)
    keep: list[re.Match[str]] = []
    for marker in markers:
        name = marker.group(2).strip()
        reason = _why_not(name, marker.start(), depth_at, last_at, last_role, bound, assigned)
        if reason:
            out.unconverted.append((marker.group(0), reason))
        else:
            out.variables.append(name)
            keep.append(marker)
    out.source = _remove(source, keep)
    return out


def _why_not(
    name: str,
    at: int,
    depth_at: Any,
    last_at: int,
    last_role: str,
    bound: set[str],
    assigned: set[str],
) -> str | None:
    if depth_at(at):
        return (
            "inside a {% %} block (a loop over the chat history...); flowrun sends images "
            "with the last user message only"
        )
    if at < last_at or last_role != "user" or depth_at(last_at):
        return "not in the last user message; flowrun sends images with the last user message"
    if not _IDENTIFIER.match(name) or name in assigned:
        return f"'{name}' is not a variable the node gives"
    if name not in bound:
        return f"the node does not give '{name}'"
    return None


def _remove(source: str, markers: list[re.Match[str]]) -> str:
    """``source`` without ``markers``; a line left blank by that goes too."""
    out = source
    for marker in reversed(markers):
        start, end = marker.span()
        line_start = out.rfind("\n", 0, start) + 1
        line_end = out.find("\n", end)
        line_end = len(out) if line_end < 0 else line_end + 1
        if not (out[line_start:start] + out[end:line_end]).strip():
            start, end = line_start, line_end
        elif not out[end:line_end].strip():  # at the end of a line: its spaces go too
            start = len(out[:start].rstrip(" \t"))
        out = out[:start] + out[end:]
    return out


def _depths(source: str) -> Any:
    """A function: offset in ``source`` -> how many ``{% %}`` blocks are open there."""
    events: list[tuple[int, int]] = []
    pos = tag_at = 0
    tag: list[str] | None = None  # the names and operators of the open {% %} tag
    for _, kind, value in _LEXER_ENV.lexer.tokeniter(source, None):
        at = source.find(value, pos)
        if at >= 0:
            pos = at + len(value)
        if kind == "block_begin":
            tag_at, tag = at, []
        elif kind == "block_end" and tag is not None:
            name = tag[0] if tag else ""
            if name.startswith("end"):
                events.append((tag_at, -1))
            elif name in _OPENS or (name == "set" and "=" not in tag):
                events.append((tag_at, 1))
            tag = None
        elif tag is not None and kind in ("name", "operator"):
            tag.append(value)

    def depth(offset: int) -> int:
        return max(0, sum(d for at, d in events if at < offset))

    return depth


def image_value(default: Any) -> Any:
    """A promptflow image value (``{"data:image/png;path": "logo.png"}``, ``...;url``,
    ``...;base64``) as the path or URL string flowrun takes; anything else unchanged."""
    if not (isinstance(default, dict) and len(default) == 1):
        return default
    ((key, value),) = default.items()
    key = str(key)
    if not key.startswith("data:image/") or not isinstance(value, str):
        return default
    if key.endswith(";base64"):
        return f"{key},{value}"
    return value
