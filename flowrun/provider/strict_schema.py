"""Converting a JSON schema to OpenAI's strict structured-output subset, when it can be done.

Strict mode needs every object closed (``additionalProperties: false``) with every property
required; a property the schema leaves optional becomes required-but-nullable, and the
nulls the model then sends for it are removed again (``drop_added_nulls``) unless the
original schema accepts null there.

Structure that strict mode cannot express (``oneOf``, ``not``, conditionals, maps with
``additionalProperties: {schema}``, free-form objects, a root that is not an object, a
sub-schema without a type such as ``{}`` or ``true``, an array without ``items`` ...)
makes ``to_strict`` return None, and the extract step falls back to JSON mode. Assertions
strict mode does not accept but that do not change the shape (``minLength``, ``uniqueItems``
..., and ``default``) are left out of the strict copy only: the reply is still validated against the full
schema, and a violation goes through the repair loop.
"""

from __future__ import annotations

import copy
from typing import Any

from flowrun.errors import NotStrictCompatible as NotStrictCompatible

# Keywords strict mode cannot express; a schema using them falls back to JSON mode.
UNSUPPORTED = frozenset(
    {
        "not",
        "if",
        "then",
        "else",
        "oneOf",
        "dependentRequired",
        "dependentSchemas",
        "dependencies",
        "patternProperties",
        "unevaluatedProperties",
        "unevaluatedItems",
        "propertyNames",
        "prefixItems",
        "additionalItems",
        "$dynamicRef",
        "$recursiveRef",
    }
)
# Dropped from the strict copy (the API rejects them there); assertions among them are still
# enforced by validation + repair, and a missing value is never filled from ``default``.
DROPPED = frozenset(
    {
        "default",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "uniqueItems",
        "contains",
        "minContains",
        "maxContains",
    }
)


# A sub-schema says what type its value has through one of these.
_TYPED = frozenset({"type", "$ref", "anyOf", "enum", "const"})


def to_strict(schema: dict[str, Any]) -> dict[str, Any] | None:
    """A strict-compatible copy of ``schema``, or None when it cannot be made strict."""
    try:
        return strict_copy(schema)
    except NotStrictCompatible:
        return None


def strict_copy(schema: dict[str, Any]) -> dict[str, Any]:
    """Like ``to_strict`` but raises ``NotStrictCompatible`` saying why."""
    root = copy.deepcopy(schema)
    root.pop("$schema", None)
    root.pop("$id", None)
    if root.get("type") != "object":
        raise NotStrictCompatible("the root of a strict schema must be of type object")
    return _convert(root, root)


def _convert(node: Any, root: dict[str, Any]) -> Any:
    if not isinstance(node, dict):  # ``true``/``false`` as a schema
        raise NotStrictCompatible("strict mode needs every sub-schema to be an object")
    bad = UNSUPPORTED & node.keys()
    if bad:
        raise NotStrictCompatible(f"strict mode does not support '{sorted(bad)[0]}'")
    for key in DROPPED & node.keys():
        del node[key]
    if isinstance(node.get("$ref"), str) and len(node) > 1:
        node = {**_resolve(root, node.pop("$ref")), **node}  # a $ref with siblings: inline it
    if "allOf" in node:
        parts = node.pop("allOf")
        if len(parts) != 1:
            raise NotStrictCompatible("strict mode does not support 'allOf' with several schemas")
        node = {**_convert(parts[0], root), **node}
    for key in ("$defs", "definitions"):
        if isinstance(node.get(key), dict):
            node[key] = {k: _convert(v, root) for k, v in node[key].items()}
    if "anyOf" in node:
        node["anyOf"] = [_convert(v, root) for v in node["anyOf"]]
    if "items" in node:
        if not isinstance(node["items"], dict):
            raise NotStrictCompatible("strict mode needs 'items' to be one schema")
        node["items"] = _convert(node["items"], root)
    kind = node.get("type")
    if not _TYPED.intersection(node):
        raise NotStrictCompatible(
            "strict mode needs a type for every value (found a schema without one)"
        )
    if (kind == "array" or (isinstance(kind, list) and "array" in kind)) and "items" not in node:
        raise NotStrictCompatible("strict mode needs 'items' for every array")
    if kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in node:
        _close_object(node, root)
    return node


def _close_object(node: dict[str, Any], root: dict[str, Any]) -> None:
    extra = node.get("additionalProperties")
    if extra not in (None, False):
        raise NotStrictCompatible("strict mode does not support 'additionalProperties' schemas")
    if "properties" not in node and extra is not False:
        raise NotStrictCompatible("strict mode cannot express an object without properties")
    props = node.get("properties", {})
    required = set(node.get("required", []))
    for name, prop in list(props.items()):
        prop = _convert(prop, root)
        props[name] = prop if name in required else _nullable(prop)
    node["properties"] = props
    node["required"] = list(props)
    node["additionalProperties"] = False


def _resolve(root: dict[str, Any], ref: str) -> dict[str, Any]:
    if not ref.startswith("#"):
        raise NotStrictCompatible(f"strict mode cannot follow the external $ref {ref!r}")
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise NotStrictCompatible(f"cannot resolve $ref {ref!r}")
        node = node[part]
    if not isinstance(node, dict):
        raise NotStrictCompatible(f"$ref {ref!r} is not a schema")
    return copy.deepcopy(node)


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    if _accepts_null(prop):
        return prop
    kind = prop.get("type")
    if "enum" in prop or "const" in prop or "$ref" in prop or kind is None:
        return {"anyOf": [prop, {"type": "null"}]}
    if isinstance(kind, list):
        return {**prop, "type": [*kind, "null"]}
    return {**prop, "type": [kind, "null"]}


def _accepts_null(prop: dict[str, Any]) -> bool:
    kind = prop.get("type")
    if kind == "null" or (isinstance(kind, list) and "null" in kind):
        return "enum" not in prop or None in prop["enum"]
    return any(isinstance(v, dict) and v.get("type") == "null" for v in prop.get("anyOf", []))


def drop_added_nulls(value: Any, schema: dict[str, Any], root: dict[str, Any] | None = None) -> Any:
    """Remove the ``null``s strict mode made the model send for properties that are optional
    in ``schema`` and do not accept null there (nulls the schema allows are kept)."""
    from flowrun.format.validation import schema_errors

    root = schema if root is None else root
    schema = _follow(schema, root, value)
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        props, required = schema["properties"], set(schema.get("required", []))
        out = {}
        for key, item in value.items():
            sub = props.get(key)
            if (
                item is None
                and isinstance(sub, dict)
                and key not in required
                and schema_errors(None, {**_defs(root), **sub})
            ):
                continue
            out[key] = drop_added_nulls(item, sub, root) if isinstance(sub, dict) else item
        return out
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [drop_added_nulls(v, schema["items"], root) for v in value]
    return value


def _defs(root: dict[str, Any]) -> dict[str, Any]:
    return {k: root[k] for k in ("$defs", "definitions") if k in root}


def _follow(schema: dict[str, Any], root: dict[str, Any], value: Any) -> dict[str, Any]:
    """The schema that applies to ``value``: through ``$ref``, ``allOf`` and ``anyOf``."""
    for _ in range(20):
        if isinstance(schema.get("$ref"), str):
            try:
                schema = {
                    **_resolve(root, schema["$ref"]),
                    **{k: v for k, v in schema.items() if k != "$ref"},
                }
            except NotStrictCompatible:
                return schema
            continue
        if isinstance(schema.get("allOf"), list) and len(schema["allOf"]) == 1:
            schema = {**schema["allOf"][0], **{k: v for k, v in schema.items() if k != "allOf"}}
            continue
        branches = schema.get("anyOf")
        if isinstance(branches, list):
            want = (
                "object"
                if isinstance(value, dict)
                else "array"
                if isinstance(value, list)
                else None
            )
            fits = [b for b in branches if isinstance(b, dict) and _kind(b, root) == want]
            if want and fits:
                schema = fits[0]
                continue
        break
    return schema


def _kind(schema: dict[str, Any], root: dict[str, Any]) -> str | None:
    if isinstance(schema.get("$ref"), str):
        try:
            schema = _resolve(root, schema["$ref"])
        except NotStrictCompatible:
            return None
    if "properties" in schema:
        return "object"
    kind = schema.get("type")
    return kind if isinstance(kind, str) else None
