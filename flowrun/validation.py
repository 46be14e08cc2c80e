"""Validating values against JSON schemas with readable error lines (compiled validators cached)."""

from __future__ import annotations

import json
from typing import Any

_cache: dict[str, Any] = {}


def _validator(schema: dict[str, Any]) -> Any:
    key = json.dumps(schema, sort_keys=True)
    validator = _cache.get(key)
    if validator is None:
        from jsonschema import Draft202012Validator

        validator = _cache[key] = Draft202012Validator(schema)
    return validator


def schema_errors(value: Any, schema: dict[str, Any], limit: int = 10) -> list[str]:
    """Every way ``value`` breaks ``schema``, as ``path: message`` lines (empty when valid)."""
    errors = sorted(
        _validator(schema).iter_errors(value), key=lambda e: [str(p) for p in e.absolute_path]
    )
    lines = []
    for err in errors[:limit]:
        where = "/".join(str(p) for p in err.absolute_path) or "(root)"
        lines.append(f"{where}: {err.message}")
    return lines
