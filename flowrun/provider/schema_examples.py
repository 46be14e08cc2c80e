"""A small instance of a JSON schema, for ``--mock``: every keyword flowrun's schemas use is
honoured (types, bounds, lengths, patterns, formats, enums, ``$ref``, composition), and the
result is checked against the schema before it is returned.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["example_instance"]

_FORMATS = {
    "date": "2024-01-01",
    "date-time": "2024-01-01T00:00:00Z",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "hostname": "example.com",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def example_instance(schema: Any, root: Any = None, variant: int = 0) -> Any:
    """A small value that satisfies ``schema`` (enough for wiring tests, not realistic data).

    ``variant`` > 0 gives a different value of the same shape (for ``uniqueItems``).
    """
    candidates = [_Gen(root if root is not None else schema, full=f) for f in (True, False)]
    first = None
    for gen in candidates:
        value = gen.make(schema, variant)
        first = value if first is None else first
        if _valid(value, schema, root):
            return value
    return first


def _valid(value: Any, schema: Any, root: Any = None) -> bool:
    from flowrun.format.validation import schema_errors

    if not isinstance(schema, dict):
        return True
    if root is not None and root is not schema:
        schema = {
            **schema,
            "$defs": root.get("$defs", {}),
            "definitions": root.get("definitions", {}),
        }
    try:
        return not schema_errors(value, schema, limit=1)
    except Exception:  # an invalid schema: nothing better to offer
        return True


class _Gen:
    def __init__(self, root: Any, *, full: bool) -> None:
        self.root = root
        self.full = full  # fill optional properties too (so templates can read them)

    def make(self, node: Any, variant: int = 0, depth: int = 0) -> Any:
        if node is True or node == {} or depth > 12:
            return f"example-{variant}" if variant else "example"
        if not isinstance(node, dict):
            return None
        node = self._flatten(node)
        if "const" in node:
            return node["const"]
        if node.get("enum"):
            return node["enum"][variant % len(node["enum"])]
        for key in ("anyOf", "oneOf"):
            if key in node:
                options = [
                    o for o in node[key] if not (isinstance(o, dict) and o.get("type") == "null")
                ]
                rest = {k: v for k, v in node.items() if k != key}
                for option in options or node[key]:
                    merged = self._merge(rest, option) if isinstance(option, dict) else option
                    value = self.make(merged, variant, depth + 1)
                    if _valid(value, node, self.root):
                        return value
                return self.make(self._merge(rest, (options or node[key])[0]), variant, depth + 1)
        kind = self._kind(node)
        maker = getattr(self, f"_{kind}", None)
        return maker(node, variant, depth) if maker else None

    # --- structure ----------------------------------------------------------------
    def _flatten(self, node: dict[str, Any]) -> dict[str, Any]:
        """Resolve ``$ref`` and merge ``allOf`` into one schema."""
        for _ in range(20):
            if isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
                target = self._resolve(node["$ref"])
                node = self._merge({k: v for k, v in node.items() if k != "$ref"}, target)
            elif isinstance(node.get("allOf"), list):
                merged = {k: v for k, v in node.items() if k != "allOf"}
                for part in node["allOf"]:
                    if isinstance(part, dict):
                        merged = self._merge(merged, part)
                node = merged
            else:
                return node
        return node

    def _resolve(self, ref: str) -> Any:
        target: Any = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part, {}) if isinstance(target, dict) else {}
        return target if isinstance(target, dict) else {}

    @staticmethod
    def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = {**a, **b}
        if "properties" in a and "properties" in b:
            out["properties"] = {**a["properties"], **b["properties"]}
        if "required" in a and "required" in b:
            out["required"] = list(dict.fromkeys([*a["required"], *b["required"]]))
        return out

    @staticmethod
    def _kind(node: dict[str, Any]) -> str:
        kind = node.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind:
            return str(kind)
        if {"properties", "required", "additionalProperties"} & node.keys():
            return "object"
        if {"items", "prefixItems", "minItems"} & node.keys():
            return "array"
        if {
            "minimum",
            "maximum",
            "exclusiveMinimum",
            "exclusiveMaximum",
            "multipleOf",
        } & node.keys():
            return "number"
        return "string"

    # --- one maker per JSON type ------------------------------------------------------
    def _object(self, node: dict[str, Any], variant: int, depth: int) -> dict[str, Any]:
        props = node.get("properties") or {}
        required = list(node.get("required") or [])
        names = list(props) if self.full else [n for n in props if n in required]
        names += [n for n in required if n not in names]
        out = {n: self.make(props.get(n, True), variant, depth + 1) for n in names}
        extra = node.get("additionalProperties", True)
        i = 0
        while len(out) < node.get("minProperties", 0) and extra is not False:
            i += 1
            out[f"extra{i}"] = self.make(extra, variant, depth + 1)
        return out

    def _array(self, node: dict[str, Any], variant: int, depth: int) -> list[Any]:
        prefix = node.get("prefixItems") or []
        items = node.get("items", True)
        count = max(node.get("minItems", 0), len(prefix), 1 if self.full else 0)
        count = min(count, node.get("maxItems", count))
        out = [
            self.make(prefix[i] if i < len(prefix) else items, variant + i, depth + 1)
            for i in range(count)
        ]
        if "contains" in node and not any(_valid(v, node["contains"], self.root) for v in out):
            out[:1] = [self.make(node["contains"], variant, depth + 1)]
        return out

    def _string(self, node: dict[str, Any], variant: int, depth: int) -> str:
        text = _FORMATS.get(node.get("format", ""), "example")
        if variant and text == "example":
            text = f"example-{variant}"
        pattern = node.get("pattern")
        if pattern and not _search(pattern, text):
            text = _sample_regex(pattern, variant) or text
        low, high = node.get("minLength", 0), node.get("maxLength")
        if len(text) < low:
            text += "x" * (low - len(text))
        if high is not None and len(text) > high:
            text = text[:high]
        return text

    def _integer(self, node: dict[str, Any], variant: int, depth: int) -> int:
        return int(self._number(node, variant, depth, integer=True))

    def _number(
        self, node: dict[str, Any], variant: int, depth: int, *, integer: bool = False
    ) -> float | int:
        low, high = node.get("minimum"), node.get("maximum")
        ex_low, ex_high = node.get("exclusiveMinimum"), node.get("exclusiveMaximum")
        step = 1 if integer else 0.5
        if isinstance(ex_low, (int, float)) and not isinstance(ex_low, bool):
            low = max(low if low is not None else ex_low + step, ex_low + step)
        if isinstance(ex_high, (int, float)) and not isinstance(ex_high, bool):
            high = min(high if high is not None else ex_high - step, ex_high - step)
        value: float = variant
        if low is not None:
            value = max(value, math.ceil(low) if integer else low)
        if high is not None and value > high:
            value = math.floor(high) if integer else high
        multiple = node.get("multipleOf")
        if multiple:
            value = math.ceil(value / multiple) * multiple
        return int(value) if integer or float(value).is_integer() else value

    def _boolean(self, node: dict[str, Any], variant: int, depth: int) -> bool:
        return variant % 2 == 1

    def _null(self, node: dict[str, Any], variant: int, depth: int) -> None:
        return None


def _search(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error:
        return True


def _sample_regex(pattern: str, variant: int = 0) -> str | None:
    """A string matching a simple regular expression (literals, classes, repeats, groups)."""
    try:
        from re import _parser as sre  # type: ignore[attr-defined]
    except ImportError:  # Python < 3.11
        import sre_parse as sre  # type: ignore[no-redef]
    try:
        parsed = sre.parse(pattern)
    except Exception:
        return None

    def emit(items: Any) -> str:
        out = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "ANY":
                out.append("x")
            elif name == "IN":
                out.append(pick(arg))
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                low, _high, sub = arg
                out.append(emit(sub) * max(low, 1 if low == 0 and variant else low))
            elif name == "SUBPATTERN":
                out.append(emit(arg[-1]))
            elif name == "BRANCH":
                out.append(emit(arg[1][0]))
            elif name == "CATEGORY":
                out.append(category(str(arg)))
        return "".join(out)

    def pick(choices: Any) -> str:
        negate = False
        for op, arg in choices:
            name = str(op)
            if name == "NEGATE":
                negate = True
            elif negate:
                break
            elif name == "LITERAL":
                return chr(arg)
            elif name == "RANGE":
                return chr(arg[0])
            elif name == "CATEGORY":
                return category(str(arg))
        return "x" if not negate else "~"

    def category(name: str) -> str:
        return {"CATEGORY_DIGIT": "0", "CATEGORY_SPACE": " ", "CATEGORY_NOT_DIGIT": "x"}.get(
            name, "x"
        )

    text = emit(parsed)
    return text if _search(pattern, text) else None
