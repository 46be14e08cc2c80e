"""Load a workflow file: YAML with line marks -> pydantic model -> checked, graphed workflow.

Every problem in the file is collected and raised together as ``WorkflowInvalid``.
"""

from __future__ import annotations

import difflib
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import yaml
from pydantic import BaseModel, ValidationError

from .errors import Problem, WorkflowInvalid
from .model import (
    STEP_TYPES,
    Budget,
    ChatStep,
    Defaults,
    EmbedStep,
    ExtractStep,
    InputSpec,
    Message,
    ToolDef,
    ToolStep,
    Workflow,
)
from .yaml_source import SourceMap, parse_yaml

_STEP_MODELS: dict[str, type[BaseModel]] = {
    "chat": ChatStep,
    "extract": ExtractStep,
    "tool": ToolStep,
    "embed": EmbedStep,
}


@dataclass
class LoadedWorkflow:
    """A valid workflow with everything the executor needs resolved."""

    spec: Workflow
    text: str
    source: SourceMap
    path: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    dependencies: dict[str, frozenset[str]] = field(default_factory=dict)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    schemas: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    functions: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def content_hash(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def file(self) -> str:
        return self.source.file


def load_workflow(path: str | Path) -> LoadedWorkflow:
    """Load and check a workflow file; raises ``WorkflowInvalid`` listing every problem."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WorkflowInvalid([Problem(str(path), 1, 1, "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise WorkflowInvalid([Problem(str(path), 1, 1, f"cannot read the file: {exc}")]) from None
    return load_workflow_text(text, file=str(path), base_dir=path.parent)


def load_workflow_text(
    text: str, file: str = "<string>", base_dir: str | Path | None = None
) -> LoadedWorkflow:
    """Load a workflow from YAML text; relative paths resolve against ``base_dir``."""
    from .checks import check_workflow

    base = Path(base_dir) if base_dir is not None else Path.cwd()
    try:
        data, smap, duplicates = parse_yaml(text, file)
    except yaml.YAMLError as exc:
        raise WorkflowInvalid([_yaml_problem(exc, file)]) from None
    problems = [
        Problem(
            file, d.line, d.col, f"duplicate key '{d.key}' (first defined on line {d.first_line})"
        )
        for d in duplicates
    ]
    if not isinstance(data, dict):
        problems.append(
            Problem(
                file, 1, 1, "a workflow file must be a YAML mapping with version, name and steps"
            )
        )
        raise WorkflowInvalid(problems)
    try:
        spec = Workflow.model_validate(data)
    except ValidationError as exc:
        problems.extend(_pydantic_problems(exc, data, smap))
        raise WorkflowInvalid(problems) from None
    loaded = LoadedWorkflow(spec=spec, text=text, source=smap, base_dir=base)
    if file != "<string>":
        loaded.path = Path(file)
    problems.extend(check_workflow(loaded))
    if problems:
        raise WorkflowInvalid(problems)
    return loaded


def _yaml_problem(exc: yaml.YAMLError, file: str) -> Problem:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    text = f"invalid YAML: {problem}" + (f" ({context})" if context else "")
    return Problem(file, line, col, text)


def _model_at(path: tuple[Any, ...], data: Any) -> type[BaseModel] | None:
    """The pydantic model that describes the mapping at ``path`` in the document."""
    if not path:
        return Workflow
    head, rest = path[0], path[1:]
    singles: dict[str, type[BaseModel]] = {"defaults": Defaults, "budget": Budget}
    maps: dict[str, type[BaseModel]] = {"inputs": InputSpec, "tools": ToolDef}
    if head in singles and not rest:
        return singles[head]
    if head in maps and len(rest) == 1:
        return maps[head]
    if head == "steps" and rest:
        step = data.get("steps", {}).get(rest[0]) if isinstance(data.get("steps"), dict) else None
        model = _STEP_MODELS.get(step.get("type")) if isinstance(step, dict) else None
        if len(rest) == 1:
            return model
        if len(rest) == 3 and rest[1] == "messages":
            return Message
    return None


def _data_path(loc: tuple[Any, ...], data: Any) -> tuple[tuple[Any, ...], bool]:
    """Map a pydantic ``loc`` onto a path in the document, skipping union/tag labels.

    Returns the path and whether its last element exists in the data.
    """
    path: list[Any] = []
    node = data
    for i, part in enumerate(loc):
        if (
            isinstance(node, dict)
            and part in node
            or isinstance(node, list)
            and isinstance(part, int)
            and 0 <= part < len(node)
        ):
            path.append(part)
            node = node[part]
        elif i == len(loc) - 1 and isinstance(node, dict):
            path.append(part)
            return tuple(path), False
    return tuple(path), True


def _pydantic_problems(
    exc: ValidationError, data: dict[str, Any], smap: SourceMap
) -> list[Problem]:
    grouped: dict[tuple[Any, ...], list[str]] = {}
    positions: dict[tuple[Any, ...], tuple[int, int]] = {}
    for err in exc.errors():
        path, exists = _data_path(tuple(err["loc"]), data)
        kind = err["type"]
        where = ".".join(str(p) for p in path) or "the file"
        if kind == "extra_forbidden":
            key = path[-1]
            model = _model_at(path[:-1], data)
            fields = sorted(_field_names(model)) if model else []
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = (
                f" (did you mean '{close[0]}'?)"
                if close
                else (f" (allowed: {', '.join(fields)})" if fields else "")
            )
            message = f"unknown key '{key}' in {_where_parent(path)}{hint}"
            position = smap.locate(path, key=True)
        elif kind in ("union_tag_invalid", "union_tag_not_found"):
            step_id = path[1] if len(path) > 1 else "?"
            expected = ", ".join(STEP_TYPES)
            if kind == "union_tag_invalid":
                tag = err.get("ctx", {}).get("tag")
                message = (
                    f"step '{step_id}': unknown step type '{tag}' (expected one of: {expected})"
                )
                position = smap.locate(path + ("type",))
            else:
                message = f"step '{step_id}' has no 'type' (expected one of: {expected})"
                position = smap.locate(path, key=True)
        elif kind == "missing":
            parent = _where_parent(path)
            message = f"missing required key '{path[-1]}' in {parent}"
            position = smap.locate(path[:-1], key=True)
        elif kind == "literal_error" and path == ("version",):
            message = f"unsupported version {data.get('version')!r}: this flowrun reads version 1"
            position = smap.locate(path)
        else:
            message = f"{where}: {_clean(err['msg'])}"
            position = smap.locate(path if exists else path[:-1])
        grouped.setdefault(
            (path, kind if kind in ("extra_forbidden", "missing") else ""), []
        ).append(message)
        positions[(path, kind if kind in ("extra_forbidden", "missing") else "")] = position
    problems = []
    for key, messages in grouped.items():
        unique = list(dict.fromkeys(messages))
        text = unique[0] if len(unique) == 1 else _merge_union_messages(unique)
        line, col = positions[key]
        problems.append(Problem(smap.file, line, col, text))
    return problems


def _merge_union_messages(messages: list[str]) -> str:
    prefix, _, first = messages[0].partition(": ")
    rest = [m.partition(": ")[2] for m in messages[1:]]
    return f"{prefix}: {first}, or {', or '.join(r[0].lower() + r[1:] for r in rest if r)}"


def _where_parent(path: tuple[Any, ...]) -> str:
    parent = path[:-1]
    if not parent:
        return "the workflow"
    if parent[0] == "steps" and len(parent) == 2:
        return f"step '{parent[1]}'"
    if parent[0] in ("inputs", "tools") and len(parent) == 2:
        return f"{parent[0][:-1]} '{parent[1]}'"
    return ".".join(str(p) for p in parent)


def _field_names(model: type[BaseModel]) -> set[str]:
    return {f.alias or name for name, f in model.model_fields.items()}


def _clean(msg: str) -> str:
    return msg.replace("Input should be", "expected").replace("Value error, ", "")
