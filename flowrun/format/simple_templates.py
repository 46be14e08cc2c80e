"""Templates that only place values, read and rendered without Jinja.

Most prompts are text with ``{{ inputs.q }}`` or ``{{ steps.draft.output }}`` in it. Such a
template (text, and ``{{ scope.key.key... }}`` lookups whose scope is ``inputs``, ``steps``,
``item`` or ``index``; no tags, comments, filters, operators or whitespace control) is read
here with one regular expression, so a run whose templates are all of this kind never imports
Jinja (``flowrun.format.templating`` falls back to ``jinja_templates`` for every other one).

The result is Jinja's, exactly: a lookup walks mappings by key, as the sandbox does for a key
a mapping holds; each value outside a lone ``{{ expression }}`` becomes ``str(value)``. Where
that is not certain (a key the mapping does not hold, a value that is not a mapping, a very
long result, ``\\r`` in the text, which Jinja rewrites), ``render`` says so and the caller
renders with Jinja, which gives its own value or error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

STEP_ATTRIBUTES = frozenset(
    {"output", "usage", "finish_reason", "skipped", "status", "tool_calls", "cost_usd", "model"}
)
SCOPE_NAMES = frozenset({"inputs", "steps", "item", "index"})

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
# a lookup with at least one key, blanks inside the braces (Jinja's own start markers are
# ``{{``, ``{%`` and ``{#``: the first of them in the text starts its first tag)
_LOOKUP = re.compile(r"\{\{[ \t\n]*(" + _NAME + r"(?:\." + _NAME + r")+)[ \t\n]*\}\}")
_TAG_START = re.compile(r"\{[{%#]")
_LONGEST = 1_000_000  # longer results are left to Jinja's sandbox, which limits them

#: the result of ``render`` when the template is not one this module renders
NOT_SIMPLE = object()


@dataclass(frozen=True)
class References:
    """What a template reads: step ids, input names and other top-level names.

    ``whole_steps`` is the template line of a use of ``steps`` that names no step (e.g.
    ``steps | tojson``, ``{% set s = steps %}``), which hides what it reads;
    ``computed_steps`` the line of a lookup by a computed id (``steps[name]``).
    """

    steps: frozenset[str] = frozenset()
    inputs: frozenset[str] = frozenset()
    names: frozenset[str] = frozenset()
    step_attributes: tuple[tuple[str, str], ...] = ()
    whole_steps: int | None = None
    computed_steps: int | None = None


@dataclass(frozen=True)
class _Simple:
    texts: tuple[str, ...]  # the text before each lookup, and after the last one
    lookups: tuple[tuple[str, ...], ...]  # each lookup's names: scope, key, key...
    lone: bool  # one lookup and blank text around it: the template gives the value itself


@lru_cache(maxsize=4096)
def parse(source: str) -> _Simple | None:
    """``source`` as text and lookups, or None if it is not a template of this kind."""
    if "\r" in source:
        return None
    texts: list[str] = []
    lookups: list[tuple[str, ...]] = []
    at = 0
    while True:
        start = _TAG_START.search(source, at)
        if start is None:
            texts.append(source[at:])
            break
        found = _LOOKUP.match(source, start.start())
        if found is None:
            return None
        names = tuple(found.group(1).split("."))
        if names[0] not in SCOPE_NAMES:
            return None
        texts.append(source[at : start.start()])
        lookups.append(names)
        at = found.end()
    if not lookups:
        return None
    lone = len(lookups) == 1 and not "".join(texts).strip()
    return _Simple(tuple(texts), tuple(lookups), lone)


def references(simple: _Simple) -> References:
    """What the template reads (what ``jinja_templates`` finds in Jinja's syntax tree)."""
    steps: set[str] = set()
    inputs: set[str] = set()
    attrs: list[tuple[str, str]] = []
    for scope, key, *rest in simple.lookups:
        if scope == "steps":
            steps.add(key)
            if rest:
                attrs.append((key, rest[0]))
        elif scope == "inputs":
            inputs.add(key)
    names = frozenset(names[0] for names in simple.lookups)
    return References(frozenset(steps), frozenset(inputs), names, tuple(attrs))


def render(simple: _Simple, context: dict[str, Any]) -> Any:
    """The template's value with ``context``, or ``NOT_SIMPLE`` where only Jinja can say."""
    texts = simple.texts
    parts = [texts[0]]
    at = 1
    for names in simple.lookups:
        value = context.get(names[0], NOT_SIMPLE)
        for key in names[1:]:
            if not isinstance(value, dict) or key not in value:
                return NOT_SIMPLE
            value = value[key]
        if simple.lone:
            return str(value) if isinstance(value, str) and type(value) is not str else value
        if type(value) is not str:
            try:
                value = str(value)
            except Exception:  # an object of the Python API's whose str() fails: Jinja reports it
                return NOT_SIMPLE
        parts += (value, texts[at])
        at += 1
    text = "".join(parts)
    return NOT_SIMPLE if len(text) > _LONGEST else text
