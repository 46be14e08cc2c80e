"""Validating values against JSON schemas with readable error lines (compiled validators cached).

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
