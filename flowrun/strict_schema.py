"""Converting a JSON schema to OpenAI's strict structured-output subset, when it can be done."""

from __future__ import annotations

import copy
from typing import Any

# Keywords strict mode does not accept; a schema using them falls back to JSON mode.
UNSUPPORTED = frozenset(
    {
        "allOf",
        "not",
        "if",
        "then",
        "else",
        "oneOf",
        "dependentRequired",
        "dependentSchemas",
        "patternProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
        "contains",
        "minContains",
        "maxContains",
        "uniqueItems",
        "prefixItems",
    }
)


class NotStrictCompatible(Exception):
    """The schema uses something strict mode cannot express."""


def to_strict(schema: dict[str, Any]) -> dict[str, Any] | None:
    """A strict-compatible copy of ``schema`` (all properties required, optional ones nullable,
    ``additionalProperties: false``), or None when it cannot be made strict."""
    if schema.get("type") != "object":
        return None
    try:
        return _convert(copy.deepcopy(schema))
    except NotStrictCompatible:
        return None


def _convert(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    bad = UNSUPPORTED & node.keys()
    if bad:
        raise NotStrictCompatible(sorted(bad)[0])
    for key in ("$defs", "definitions"):
        if key in node:
            node[key] = {k: _convert(v) for k, v in node[key].items()}
    if "anyOf" in node:
        node["anyOf"] = [_convert(v) for v in node["anyOf"]]
    if "items" in node:
        if not isinstance(node["items"], dict):
            raise NotStrictCompatible("items")
        node["items"] = _convert(node["items"])
    if node.get("type") == "object" or "properties" in node:
        extra = node.get("additionalProperties", False)
        if extra not in (False, None):
            raise NotStrictCompatible("additionalProperties")
        props = node.get("properties", {})
        required = set(node.get("required", []))
        for name, prop in list(props.items()):
            prop = _convert(prop)
            props[name] = prop if name in required else _nullable(prop)
        node["properties"] = props
        node["required"] = list(props)
        node["additionalProperties"] = False
    return node


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    kind = prop.get("type")
    if isinstance(kind, str) and "enum" not in prop:
        return {**prop, "type": [kind, "null"]}
    if isinstance(kind, list):
        return prop if "null" in kind else {**prop, "type": [*kind, "null"]}
    return {"anyOf": [prop, {"type": "null"}]}


def drop_added_nulls(value: Any, schema: dict[str, Any]) -> Any:
    """Remove ``null`` values that strict mode produced for properties optional in ``schema``."""
    if isinstance(value, dict) and isinstance(schema, dict) and "properties" in schema:
        required = set(schema.get("required", []))
        out = {}
        for key, item in value.items():
            if item is None and key not in required and key in schema["properties"]:
                continue
            out[key] = drop_added_nulls(item, schema["properties"].get(key, {}))
        return out
    if (
        isinstance(value, list)
        and isinstance(schema, dict)
        and isinstance(schema.get("items"), dict)
    ):
        return [drop_added_nulls(v, schema["items"]) for v in value]
    return value
