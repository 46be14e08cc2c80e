"""JSON or YAML data the user hands over (schema files, inputs files, -i values).

An error says where (line and column) and what is wrong there, and never quotes the text: a
file pointed to by mistake may hold secrets. Nesting deeper than ``MAX_NESTING`` levels is an
error here, not a RecursionError in whatever reads the data next.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from flowrun.errors import DataError as DataError
from flowrun.format.yaml_source import (
    MAX_NESTING,
    YamlTooLarge,
    bracket_depth_position,
    describe_yaml_error,
    parse_yaml,
)


def _too_deep(text: str) -> DataError:
    line, col = bracket_depth_position(text) or (1, 1)
    return DataError(f"nested more than {MAX_NESTING} levels deep", line, col)


def nesting_depth(value: Any, limit: int = MAX_NESTING) -> int:
    """How deep lists and mappings nest in ``value`` (stops counting past ``limit``)."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth)
            if deepest > limit:
                break
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def load_json(text: str) -> Any:
    """JSON text as data; raises ``DataError``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not valid JSON: {exc.msg}", exc.lineno, exc.colno) from None
    except RecursionError:
        raise _too_deep(text) from None
    if nesting_depth(data) > MAX_NESTING:
        raise _too_deep(text)
    return data


def load_yaml(text: str) -> Any:
    """YAML (or JSON) text as data, with the workflow parser's limits; raises ``DataError``."""
    try:
        data, _, _ = parse_yaml(text, "")
    except yaml.YAMLError as exc:
        line, col, message = describe_yaml_error(exc, text)
        raise DataError(
            f"not valid YAML: {message.removeprefix('invalid YAML: ')}", line, col
        ) from None
    except YamlTooLarge as exc:
        raise DataError(exc.message, exc.line, exc.col) from None
    return data


def load_data(text: str, is_json: bool) -> Any:
    return load_json(text) if is_json else load_yaml(text)


_JSON_TYPES = "array, boolean, integer, null, number, object, string"


def kind_of(value: Any) -> str:
    """What a value is, in words, without the value: ``text``, ``a list``..."""
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    for types, word in ((str, "text"), (dict, "a mapping"), (list, "a list")):
        if isinstance(value, types):
            return word
    return "a number" if isinstance(value, (int, float)) else type(value).__name__


def _place(text: str, path: Any) -> str:
    """``, line L, column C`` of ``path`` in a schema file's text, when it can be found."""
    try:
        _, smap, _ = parse_yaml(text, "")  # JSON is YAML: only its positions are used
    except (yaml.YAMLError, YamlTooLarge):
        return ""
    line, col = smap.locate(tuple(path))
    return f", line {line}, column {col}"


def schema_problem(ref: Any, exc: Any, text: str | None = None) -> str:
    """Why a JSON schema is not valid, in words (``exc`` is a jsonschema ``SchemaError``).

    A schema read from a file (``ref`` is its path, ``text`` its text) is never quoted: the
    file may not be the one meant; the error gives the line and column in it instead. An
    inline schema is part of the workflow, so its values are shown.
    """
    from_file = isinstance(ref, str)
    where = "/".join(str(p) for p in exc.path)
    if exc.path and exc.path[-1] == "type" and isinstance(exc.instance, str):
        name = "" if from_file else f"'{exc.instance}' "
        why = f"{name}is not a JSON schema type (use one of: {_JSON_TYPES})"
        if from_file:
            why = "the type " + why
    elif not from_file:
        why = exc.message
    elif exc.validator == "type":
        wanted = (
            exc.validator_value if isinstance(exc.validator_value, list) else [exc.validator_value]
        )
        found = kind_of(exc.instance)
        why = (
            f"the file holds {found}, not a schema (a mapping)"
            if not where
            else f"{found} where {' or '.join(map(str, wanted))} belongs"
        )
    else:
        why = f"{kind_of(exc.instance)} that breaks the meta-schema's '{exc.validator}' rule"
    source = f"{ref} " if from_file else ""
    place = _place(text, exc.path) if text is not None else ""
    at = f"at {where}{place}" if where else place.removeprefix(", ")
    return f"{source}is not a valid JSON schema: {why}" + (f" ({at})" if at else "")
