"""A file whose keys or values do not fit the models: pydantic's errors as one-line problems
at their place in the file, and the rest of the file kept so it can still be checked."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError

from flowrun.errors import Problem, close_matches, did_you_mean, field_text
from flowrun.format.spec import (
    INVALID_MODEL,
    STEP_TYPES,
    AzureSpec,
    Budget,
    ChatStep,
    Defaults,
    EmbedStep,
    ExtractStep,
    InputSpec,
    Message,
    ServerSpec,
    ToolDef,
    ToolStep,
    Workflow,
)
from flowrun.format.yaml_source import SourceMap

_STEP_MODELS: dict[str, type[BaseModel]] = {
    "chat": ChatStep,
    "extract": ExtractStep,
    "tool": ToolStep,
    "embed": EmbedStep,
}

# --- model errors -> problems ------------------------------------------------------------

_SECTIONS = {"steps": "step", "inputs": "input", "tools": "tool", "servers": "server"}
# What a pydantic union member label (a loc part) expects.
_LABELS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "none": "null",
    "list[str]": "a list of strings",
    "dict[str,any]": "a mapping",
    "list[dict[str,any]]": "a list of content parts",
}
_EXPECTED = {
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "bool_parsing": "true or false",
    "string_type": "a string",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "list_type": "a list",
}
_BOUNDS = {
    "greater_than": ("gt", "greater than {}"),
    "greater_than_equal": ("ge", "at least {}"),
    "less_than": ("lt", "less than {}"),
    "less_than_equal": ("le", "at most {}"),
}


@dataclass
class _ModelError:
    path: tuple[Any, ...]  # where in the document (a missing key's path ends with the key)
    kind: str  # pydantic's error type
    exists: bool  # whether the last element of ``path`` is in the document
    expected: str  # what the value should be, in words
    value: Any
    ctx: dict[str, Any]


def _model_errors(exc: ValidationError, data: dict[str, Any]) -> list[_ModelError]:
    out = []
    for err in exc.errors():
        loc, kind = tuple(err["loc"]), err["type"]
        path: list[Any] = []
        node: Any = data
        label = None
        exists = True
        for i, part in enumerate(loc):
            if _has(node, part):
                path.append(part)
                node = node[part]
            elif kind == "missing" and i == len(loc) - 1 and isinstance(node, dict):
                path.append(part)
                exists = False
            elif len(path) == 2 and path[0] == "steps" and part in STEP_TYPES:
                continue  # the discriminator's tag, not a place in the document
            else:
                label = str(part)  # a union member: the error is about the value here
                break
        expected = _LABELS.get(label or "") or _expectation(kind, err)
        value = node if label else err.get("input")
        out.append(_ModelError(tuple(path), kind, exists, expected, value, err.get("ctx") or {}))
    return out


def _has(node: Any, part: Any) -> bool:
    if isinstance(node, dict):
        return part in node
    return isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)


def _expectation(kind: str, err: Any) -> str:
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind in _BOUNDS:
        key, text = _BOUNDS[kind]
        return text.format(_number(err.get("ctx", {}).get(key)))
    if kind == "literal_error":
        return "one of " + str(err.get("ctx", {}).get("expected", "")).replace(" or ", ", ")
    return _clean(err["msg"])


def pydantic_problems(exc: ValidationError, data: dict[str, Any], smap: SourceMap) -> list[Problem]:
    problems: list[Problem] = []
    values: dict[tuple[Any, ...], list[_ModelError]] = {}
    for e in _model_errors(exc, data):
        if e.kind == "extra_forbidden":
            problems.append(_unknown_key_problem(e.path, data, smap))
        elif e.kind in ("union_tag_invalid", "union_tag_not_found"):
            problems.append(_step_type_problem(e, smap))
        elif e.kind == "missing":
            owner, _ = _split(e.path[:-1])
            what = _owner_name(owner) or "the workflow"
            line, col = smap.locate(e.path[:-1], key=True)
            step_type = e.value.get("type") if isinstance(e.value, dict) else None
            why = ""
            if owner[:1] == ("steps",) and step_type:
                why = f" (an {step_type} step needs it)" if step_type[0] in "aeiou" else ""
                why = why or f" (a {step_type} step needs it)"
            elif e.path == ("version",):
                why = "; add version: 1 at the top"
            message = f"{what} is missing the required key '{e.path[-1]}'{why}"
            problems.append(Problem(smap.file, line, col, message))
        elif e.kind == "literal_error" and e.path == ("version",):
            line, col = smap.locate(e.path)
            message = (
                f"unsupported version {_show(data.get('version'))}: "
                "this flowrun reads version 1 files; set version: 1"
            )
            problems.append(Problem(smap.file, line, col, message))
        else:
            values.setdefault(e.path, []).append(e)
    for path, errors in values.items():
        line, col = smap.locate(path, key=errors[0].value is None)
        problems.append(Problem(smap.file, line, col, _value_message(path, errors)))
    return problems


def _unknown_key_problem(path: tuple[Any, ...], data: Any, smap: SourceMap) -> Problem:
    key = path[-1]
    model = _model_at(path[:-1], data)
    fields = sorted(_field_names(model)) if model else []
    if path[0] == "inputs" and len(path) == 3 and key in ("required", "optional"):
        hint = " (an input is required unless it has a default; remove this key)"
    else:
        hint = did_you_mean(str(key), fields)
        hint = hint or (f" (allowed: {', '.join(fields)})" if fields else "")
    owner, rest = _split(path[:-1])
    where = _owner_name(owner) or "the workflow"
    if rest:
        where += " " + field_text(rest)
    line, col = smap.locate(path, key=True)
    return Problem(smap.file, line, col, f"unknown key '{key}' in {where}{hint}")


def _step_type_problem(e: _ModelError, smap: SourceMap) -> Problem:
    step_id = e.path[1] if len(e.path) > 1 else "?"
    expected = ", ".join(STEP_TYPES)
    if e.kind == "union_tag_invalid":
        tag = e.ctx.get("tag")
        close = close_matches(str(tag), STEP_TYPES, n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {expected}"
        message = f"step '{step_id}': unknown step type '{tag}' ({hint})"
        line, col = smap.locate(e.path + ("type",))
    else:
        message = f"step '{step_id}' has no type: add type: with one of {expected}"
        line, col = smap.locate(e.path, key=True)
    return Problem(smap.file, line, col, message)


def _value_message(path: tuple[Any, ...], errors: list[_ModelError]) -> str:
    owner, rest = _split(path)
    expected = " or ".join(dict.fromkeys(e.expected for e in errors if e.expected))
    value = errors[0].value
    subject = field_text(rest)
    name = _owner_name(owner)
    if path == ("steps",) and (errors[0].kind == "too_short" or value is None):
        return "steps: a workflow needs at least one step"
    if len(path) == 2 and path[0] == "steps" and isinstance(value, (str, type(None), list)):
        return (
            f"step '{path[1]}' must be a mapping with a type "
            f"({', '.join(STEP_TYPES)}), not {_show(value)}"
        )
    if subject and name:
        text = f"{name}: {subject} must be {expected}"
    else:
        text = f"{name or subject} must be {expected}"
    text += f", not {_show(value)}"
    if expected.startswith("a list") and isinstance(value, str):
        text += f"; write [{value}]"
    elif len(path) == 2 and path[0] == "inputs" and isinstance(value, str):
        text += f"; write {path[1]}: {{type: {value}}}"
    elif errors[0].kind == "literal_error" and isinstance(value, str):
        close = close_matches(value, re.findall(r"'([^']*)'", expected), n=1)
        text += f"; did you mean '{close[0]}'?" if close else ""
    return text


def _split(path: tuple[Any, ...]) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Split a document path into its owner (a step, input, tool or section) and the rest."""
    if path and path[0] in _SECTIONS and len(path) >= 2:
        return path[:2], path[2:]
    if path and path[0] in ("defaults", "budget", "outputs"):
        return path[:1], path[1:]
    return (), path


def _owner_name(owner: tuple[Any, ...]) -> str:
    if len(owner) == 2 and owner[0] in _SECTIONS:
        return f"{_SECTIONS[owner[0]]} '{owner[1]}'"
    return str(owner[0]) if owner else ""


def _show(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


# --- partial models: check the rest of a file whose parts do not fit ---------------------

_PLACEHOLDER_MODEL = INVALID_MODEL


def without_invalid_parts(
    data: dict[str, Any], exc: ValidationError, unchecked: Any
) -> Workflow | None:
    """The workflow without the parts that broke the model, or None if too little is left.

    Steps, inputs and tools that had to be left out are recorded in ``unchecked`` so that
    references to them are not reported as unknown.
    """
    data = copy.deepcopy(data)
    for _ in range(4):
        for e in _model_errors(exc, data):
            if not _drop(data, e, unchecked):
                return None
        try:
            return Workflow.model_validate(data)
        except ValidationError as again:
            exc = again
    return None


def _drop(data: dict[str, Any], e: _ModelError, unchecked: Any) -> bool:
    """Remove (or neutralise) the part of ``data`` that ``e`` is about; False if impossible."""
    path = e.path
    if not path:
        return False
    head = path[0]
    if head == "version":
        data["version"] = 1
        return True
    if head == "name":
        data["name"] = "workflow"
        return True
    if head in _SECTIONS:
        if len(path) == 1:
            return head != "steps" and _pop(data, (head,))
        section = data.get(head)
        item = section.get(path[1]) if isinstance(section, dict) else None
        model = (
            _STEP_MODELS.get(item.get("type"))
            if head == "steps" and isinstance(item, dict)
            else None
        )
        model = model or {"inputs": InputSpec, "tools": ToolDef, "servers": ServerSpec}.get(head)
        if len(path) >= 3 and isinstance(item, dict) and model is not None:
            name = path[2]
            fieldinfo = next(
                (f for n, f in model.model_fields.items() if (f.alias or n) == name), None
            )
            if name == "model":
                item[name] = _PLACEHOLDER_MODEL
                return True
            if e.kind == "extra_forbidden" or (
                fieldinfo is not None and not fieldinfo.is_required() and e.kind != "missing"
            ):
                return _pop(data, path[:3])
        getattr(unchecked, head).add(path[1])
        return _pop(data, path[:2])
    if head == "defaults" and len(path) >= 2 and path[1] == "model":
        data["defaults"]["model"] = _PLACEHOLDER_MODEL
        return True
    if head in ("defaults", "budget", "outputs", "description") or e.kind == "extra_forbidden":
        return _pop(data, path[:2] if head == "defaults" else path[:1])
    return False


def _pop(data: dict[str, Any], path: tuple[Any, ...]) -> bool:
    node: Any = data
    for part in path[:-1]:
        if not isinstance(node, dict) or part not in node:
            return True  # already gone
        node = node[part]
    if isinstance(node, dict):
        node.pop(path[-1], None)
    return True


def _model_at(path: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    """The pydantic model that describes the mapping at ``path`` in the document."""
    if not path:
        return Workflow
    head, rest = path[0], path[1:]
    singles: dict[str, type[BaseModel]] = {"defaults": Defaults, "budget": Budget}
    maps: dict[str, type[BaseModel]] = {
        "inputs": InputSpec,
        "tools": ToolDef,
        "servers": ServerSpec,
    }
    if head in singles and not rest:
        return singles[head]
    if head in maps and len(rest) == 1:
        return maps[head]
    if head == "servers" and len(rest) == 2 and rest[1] == "azure":
        return AzureSpec
    if head == "steps" and rest:
        step = data.get("steps", {}).get(rest[0]) if isinstance(data.get("steps"), dict) else None
        model = _STEP_MODELS.get(step.get("type")) if isinstance(step, dict) else None
        if len(rest) == 1:
            return model
        if len(rest) == 3 and rest[1] == "messages":
            return Message
    return None


def _field_names(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def _clean(msg: str) -> str:
    return msg.replace("Input should be", "expected").replace("Value error, ", "")
