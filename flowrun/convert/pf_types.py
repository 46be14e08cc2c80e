"""What flows into a python node's parameter, against what its type hint accepts.

promptflow passes node values to a python tool unchecked; flowrun validates a tool step's
arguments against the function's type hints (pydantic's lax mode), so a list into
``items: str``, or a bypassed node's ``None`` into ``found: str``, fails the step. The
converter cannot change the user's file, so it finds the obvious cases -- a flow input's
declared type, an ``llm`` or ``prompt`` node's text, a python node's return annotation, a node
that may be bypassed -- and reports them. Anything it cannot tell is not reported.
"""

from __future__ import annotations

import ast

Kinds = frozenset[str]  #: JSON kinds: string, integer, number, boolean, array, object, null

_ANY: Kinds = frozenset({"string", "integer", "number", "boolean", "array", "object", "null"})
_SCALAR: Kinds = frozenset({"string", "integer", "number", "boolean"})
# What pydantic's lax mode accepts for each annotation (numbers and booleans from text too).
_ACCEPTS: dict[str, Kinds] = {
    "str": frozenset({"string"}),
    "int": _SCALAR,
    "float": _SCALAR,
    "bool": _SCALAR,
    "list": frozenset({"array"}),
    "List": frozenset({"array"}),
    "Sequence": frozenset({"array"}),
    "tuple": frozenset({"array"}),
    "Tuple": frozenset({"array"}),
    "set": frozenset({"array"}),
    "Set": frozenset({"array"}),
    "dict": frozenset({"object"}),
    "Dict": frozenset({"object"}),
    "Mapping": frozenset({"object"}),
    "None": frozenset({"null"}),
}
_INPUT_KINDS: dict[str, Kinds] = {
    "string": frozenset({"string"}),
    "image": frozenset({"string"}),
    "int": frozenset({"integer"}),
    "double": frozenset({"number"}),
    "bool": frozenset({"boolean"}),
    "list": frozenset({"array"}),
    "object": frozenset({"object"}),
}
# What a function with that return annotation gives.
_RETURNS: dict[str, Kinds] = {
    **_ACCEPTS,
    "int": frozenset({"integer"}),
    "float": frozenset({"number"}),
    "bool": frozenset({"boolean"}),
}
_WORDS = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean",
    "array": "a list",
    "object": "an object",
    "null": "None",
}


def input_kinds(declared: str) -> Kinds | None:
    """The kinds a flow input of promptflow type ``declared`` holds (None: unknown)."""
    return _INPUT_KINDS.get(declared)


def return_kinds(annotation: str | None) -> Kinds | None:
    """The kinds a python tool returns, read from its return annotation (None: unknown)."""
    return _parse(annotation, _RETURNS) if annotation else None


def accepted(annotation: str) -> Kinds | None:
    """The kinds an annotation accepts; None when it is ``Any`` or not understood."""
    return _parse(annotation, _ACCEPTS)


def _parse(annotation: str, table: dict[str, Kinds]) -> Kinds | None:
    try:
        tree = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    return _kinds(tree, table)


def _kinds(node: ast.expr, table: dict[str, Kinds]) -> Kinds | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # "str" (forward ref)
        return _parse(node.value, table)
    if isinstance(node, ast.Constant) and node.value is None:
        return table["None"]
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right], table)
    base = node.value if isinstance(node, ast.Subscript) else node
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", None)
    if isinstance(node, ast.Subscript) and name in ("Optional", "Union"):
        args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
        kinds = _union(args, table)
        return kinds if kinds is None or name == "Union" else kinds | {"null"}
    return table.get(name or "")


def _union(members: list[ast.expr], table: dict[str, Kinds]) -> Kinds | None:
    out: set[str] = set()
    for member in members:
        kinds = _kinds(member, table)
        if kinds is None:
            return None
        out |= kinds
    return frozenset(out)


def mismatch(flowing: Kinds | None, annotation: str | None) -> list[str]:
    """The kinds that flow in and the annotation refuses (words, e.g. ``["None"]``)."""
    if flowing is None or annotation is None:
        return []
    accepts = accepted(annotation)
    if accepts is None or accepts == _ANY:
        return []
    return [_WORDS[k] for k in sorted(flowing - accepts, key=list(_WORDS).index)]
