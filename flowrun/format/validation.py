"""Validating values against JSON schemas with readable error lines (compiled validators cached),
and checking that a schema is one (``schema_error``).

The schema's own ``$schema`` picks the draft (default: 2020-12).
"""

from __future__ import annotations

import json
import threading
from typing import Any

_cache: dict[str, Any] = {}
_lock = threading.Lock()


def _validator(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True, default=str)
    validator = _cache.get(key)
    if validator is None:
        from jsonschema import Draft202012Validator
        from jsonschema.validators import validator_for

        cls = validator_for(schema, default=Draft202012Validator)
        validator = cls(schema)
        with _lock:
            _cache[key] = validator
    return validator


def schema_error(schema: Any) -> Any | None:
    """How ``schema`` breaks the 2020-12 meta-schema (a jsonschema ``SchemaError``), or None.

    Schemas made only of common keywords with values of the right kind are recognised
    without jsonschema, whose import and meta-schema check are most of a cold ``validate``;
    anything else goes through jsonschema.
    """
    if _plainly_valid(schema):
        return None
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        return exc
    return None


_TYPES = frozenset({"array", "boolean", "integer", "null", "number", "object", "string"})
_COUNTS = frozenset(
    {"minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties"}
)
_NUMBERS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})
_TEXTS = frozenset({"title", "description", "format", "$comment"})
_FLAGS = frozenset({"uniqueItems", "deprecated", "readOnly", "writeOnly"})
_ANYTHING = frozenset({"default", "const"})


def _plainly_valid(schema: Any, depth: int = 0) -> bool:
    """True only if ``schema`` surely fits the meta-schema (False: not sure, ask jsonschema)."""
    if isinstance(schema, bool):
        return True
    if not isinstance(schema, dict) or depth > 50:
        return False
    for key, value in schema.items():
        if key in _TEXTS:
            ok = isinstance(value, str)
        elif key in _ANYTHING:
            ok = True
        elif key in _FLAGS:
            ok = isinstance(value, bool)
        elif key in _COUNTS:
            ok = type(value) is int and value >= 0
        elif key in _NUMBERS:
            ok = type(value) in (int, float)
        elif key == "type":
            ok = (isinstance(value, str) and value in _TYPES) or (
                isinstance(value, list)
                and bool(value)
                and all(isinstance(v, str) and v in _TYPES for v in value)
                and len(set(value)) == len(value)
            )
        elif key == "required":
            ok = (
                isinstance(value, list)
                and all(isinstance(v, str) for v in value)
                and len(set(value)) == len(value)
            )
        elif key in ("enum", "examples"):
            ok = isinstance(value, list)
        elif key in ("properties", "$defs"):
            ok = isinstance(value, dict) and all(
                _plainly_valid(v, depth + 1) for v in value.values()
            )
        elif key in ("items", "additionalProperties"):
            ok = _plainly_valid(value, depth + 1)
        elif key in ("anyOf", "allOf", "oneOf"):
            ok = isinstance(value, list) and bool(value)
            ok = ok and all(_plainly_valid(v, depth + 1) for v in value)
        elif key == "multipleOf":
            ok = type(value) in (int, float) and value > 0
        elif key == "pattern":
            ok = isinstance(value, str) and _compiles(value)
        elif key == "$ref":
            ok = isinstance(value, str) and value.startswith("#/") and " " not in value
        else:
            ok = False  # a keyword this check does not know: let jsonschema decide
        if not ok:
            return False
    return True


def _compiles(pattern: str) -> bool:
    """Whether ``pattern`` is a regex (what jsonschema's ``regex`` format check asks)."""
    import re

    try:
        re.compile(pattern)
    except re.error:
        return False
    return True


def schema_errors(value: Any, schema: dict[str, Any], limit: int = 10) -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``path: message`` lines (empty when valid).

    The path is a JSON pointer into the value (``/items/0/price``); ``(root)`` is the value itself.
    """
    errors = sorted(
        _validator(schema).iter_errors(value),
        key=lambda e: ([str(p) for p in e.absolute_path], e.message),
    )
    lines = []
    for err in errors[:limit]:
        lines.append(f"{pointer(err.absolute_path)}: {err.message}")
    if len(errors) > limit:
        lines.append(f"... and {len(errors) - limit} more")
    return lines


def pointer(path: Any) -> str:
    """A JSON pointer (RFC 6901) for a path of keys and indexes."""
    parts = [str(p).replace("~", "~0").replace("/", "~1") for p in path]
    return "/" + "/".join(parts) if parts else "(root)"
