"""Literal values of a promptflow flow in the types flowrun expects (promptflow accepts
``default: '3'`` for an int input and ``max_tokens: '120'`` for a number)."""

from __future__ import annotations

import json
from typing import Any


def number(raw: Any, kind: type) -> Any:
    """A number from a value or its text; None when it is not one (``int`` also refuses 2.5)."""
    if raw is None or isinstance(raw, bool):
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if kind is int:
        return int(value) if value.is_integer() else None
    return int(value) if value.is_integer() and isinstance(raw, int) else value


def json_value(raw: Any) -> Any:
    """A list or object given as JSON text (``stop: '["\\n"]'``) -> the value."""
    if isinstance(raw, str) and raw.strip()[:1] in ("[", "{"):
        try:
            return json.loads(raw)
        except ValueError:
            return raw
    return raw


def typed(value: Any, kind: str) -> Any:
    """A flow input's default in its declared type (promptflow accepts ``default: '3'``)."""
    if not isinstance(value, str) or kind == "string":
        return value
    if kind == "integer":
        return number(value, int) if number(value, int) is not None else value
    if kind == "number":
        return number(value, float) if number(value, float) is not None else value
    if kind == "boolean" and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if kind in ("array", "object"):
        return json_value(value)
    return value


def coerce(value: Any, annotation: str | None) -> Any:
    """A literal node input in the type of the function's parameter (as promptflow converts)."""
    if not isinstance(value, str) or annotation is None:
        return value
    base = annotation.split("[")[0].split(".")[-1].lower()
    kind = {"int": "integer", "float": "number", "bool": "boolean", "list": "array"}.get(base)
    kind = kind or {"dict": "object"}.get(base)
    return typed(value, kind) if kind else value


def strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in strings(v)]
    return []
