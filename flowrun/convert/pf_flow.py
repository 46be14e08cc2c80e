"""Reading a promptflow DAG flow: ``flow.dag.yaml``, its inputs, outputs, nodes and variants.

The format is promptflow's own (``promptflow.contracts.flow``): a value is a reference when
it is exactly ``${...}`` -- ``${inputs.x}`` (or ``${flow.x}``) for a flow input,
``${node}`` / ``${node.output}`` / ``${node.output.a.b}`` for a node's output -- and a literal
otherwise.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flowrun.convert.report import FlowProblem, NotAFlow
from flowrun.errors import Problem, WorkflowInvalid
from flowrun.format.yaml_source import describe_yaml_error, parse_yaml

DAG_FILES = ("flow.dag.yaml", "flow.dag.yml")
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")
_PATH_PART = re.compile(r"\[(\d+)\]|\[['\"]([^'\"]*)['\"]\]|\.?([^.\[\]]+)")


@dataclass(frozen=True)
class Ref:
    """A ``${...}`` reference: to a flow input or to a node's output."""

    kind: str  #: "input" or "node"
    name: str
    path: tuple[str | int, ...] = ()
    text: str = ""
    section: str = "output"  #: for a node: promptflow nodes have only "output"

    def expr(self) -> str:
        """The flowrun template expression that reads the same value."""
        base = "inputs" if self.kind == "input" else "steps"
        out = base + access(self.name)
        if self.kind == "node":
            out += ".output"
        return out + "".join(access(p) for p in self.path)


def access(key: str | int) -> str:
    """``.key`` when ``key`` is an identifier, else ``["key"]`` / ``[0]``."""
    if isinstance(key, int):
        return f"[{key}]"
    if _IDENTIFIER.match(key):
        return f".{key}"
    return '["' + key.replace("\\", "\\\\").replace('"', '\\"') + '"]'


def parse_ref(value: Any) -> Ref | None:
    """The reference a node input holds, or None for a literal (promptflow's own rule)."""
    if not (isinstance(value, str) and value.startswith("${") and value.endswith("}")):
        return None
    inner = value[2:-1].strip()
    if not inner:
        return None
    for prefix in ("inputs.", "flow."):
        if inner.startswith(prefix):
            parts = _split_path(inner[len(prefix) :])
            return Ref("input", str(parts[0]), parts[1:], value)
    name, _, rest = inner.partition(".")
    section, _, prop = rest.partition(".")
    return Ref("node", name, _split_path(prop), value, section or "output")


def _split_path(text: str) -> tuple[str | int, ...]:
    """``a.b[0]['c d']`` -> ``("a", "b", 0, "c d")``."""
    return tuple(
        int(index) if index else (quoted or name)
        for index, quoted, name in _PATH_PART.findall(text)
    ) or ((text,) if text else ())


@dataclass
class PfInput:
    name: str
    type: str = "string"
    default: Any = None
    has_default: bool = False
    description: str | None = None
    enum: list[Any] | None = None
    chat_history: bool = False  #: ``is_chat_history: true``, or named chat_history without false


@dataclass
class PfOutput:
    name: str
    reference: Any
    description: str | None = None


@dataclass
class PfNode:
    name: str
    type: str
    data: dict[str, Any]  #: the node's mapping (the chosen variant's, for a node with variants)
    variant: str | None = None
    other_variants: list[str] = field(default_factory=list)
    broken: bool = False  #: its definition has a problem (reported); kept so references resolve

    @property
    def inputs(self) -> dict[str, Any]:
        value = self.data.get("inputs") or {}
        return value if isinstance(value, dict) else {}

    @property
    def source(self) -> dict[str, Any]:
        value = self.data.get("source") or {}
        return value if isinstance(value, dict) else {}

    @property
    def activate(self) -> dict[str, Any] | None:
        value = self.data.get("activate")
        return value if isinstance(value, dict) else None

    @property
    def aggregation(self) -> bool:
        return bool(self.data.get("aggregation") or self.data.get("reduce"))


@dataclass
class PfFlow:
    dir: Path
    dag: Path
    inputs: dict[str, PfInput]
    outputs: dict[str, PfOutput]
    nodes: list[PfNode]
    data: dict[str, Any]
    problems: list[FlowProblem] = field(default_factory=list)

    def node(self, name: str) -> PfNode | None:
        return next((n for n in self.nodes if n.name == name), None)


def find_dag(path: Path) -> Path:
    """The ``flow.dag.yaml`` of a flow folder (or the file itself); raises ``NotAFlow``."""
    if path.is_file():
        if path.name in DAG_FILES:
            return path
        raise NotAFlow(f"{path}: not a promptflow flow (expected a folder with flow.dag.yaml)")
    if not path.is_dir():
        raise NotAFlow(f"{path}: no such folder")
    for name in DAG_FILES:
        if (path / name).is_file():
            return path / name
    if (path / "flow.flex.yaml").is_file():
        raise NotAFlow(
            f"{path}: a flex flow (flow.flex.yaml) is Python code, not a DAG: "
            "only flows with a flow.dag.yaml convert"
        )
    raise NotAFlow(f"{path}: not a promptflow flow (no flow.dag.yaml)")


def read_flow(path: str | Path, variants: dict[str, str] | None = None) -> PfFlow:
    """Read a flow folder; structural problems (bad references...) are in ``flow.problems``."""
    dag = find_dag(Path(path))
    data = _load_dag(dag)
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
        raise NotAFlow(f"{dag}: not a promptflow flow (no list of nodes)")
    flow = PfFlow(dag.parent, dag, _inputs(data), _outputs(data), [], data)
    file = str(dag)
    for i, raw in enumerate(data["nodes"]):
        node = _node(raw, i, data, variants or {}, flow, file)
        if node is None:
            continue
        if flow.node(node.name) is not None:
            flow.problems.append(FlowProblem(file, node.name, "two nodes have this name"))
            continue
        flow.nodes.append(node)
    for name in sorted(set(variants or {}) - {n.name for n in flow.nodes}):
        flow.problems.append(FlowProblem(file, name, "--variant names a node that does not exist"))
    _check_references(flow, file)
    return flow


def _load_dag(dag: Path) -> Any:
    """The parsed ``flow.dag.yaml``; a file that is not YAML, or repeats a key, is an invalid
    file (exit 2) with one ``FILE:LINE:COL: message`` line per problem."""
    try:
        text = dag.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NotAFlow(f"{dag}: cannot read the file: {exc}") from None
    try:
        data, _, duplicates = parse_yaml(text, str(dag))
    except yaml.YAMLError as exc:
        line, col, message = describe_yaml_error(exc, text)
        raise WorkflowInvalid([Problem(str(dag), line, col, message)]) from None
    if duplicates:  # ruamel.yaml (promptflow's reader) refuses them; the last would win here
        raise WorkflowInvalid(
            [
                Problem(
                    str(dag),
                    d.line,
                    d.col,
                    f"duplicate key '{d.key}' (first defined on line {d.first_line}); "
                    "keep only one",
                )
                for d in duplicates
            ]
        )
    return data


def _inputs(data: dict[str, Any]) -> dict[str, PfInput]:
    out: dict[str, PfInput] = {}
    for name, spec in (data.get("inputs") or {}).items():
        spec = spec if isinstance(spec, dict) else {"type": "string", "default": spec}
        has_default = spec.get("default") is not None
        out[str(name)] = PfInput(
            str(name),
            str(spec.get("type", "string")),
            spec.get("default"),
            has_default,
            spec.get("description") or None,
            spec.get("enum") or None,
            bool(spec.get("is_chat_history"))
            or (name == "chat_history" and spec.get("is_chat_history") is not False),
        )
    return out


def _outputs(data: dict[str, Any]) -> dict[str, PfOutput]:
    out: dict[str, PfOutput] = {}
    for name, spec in (data.get("outputs") or {}).items():
        spec = spec if isinstance(spec, dict) else {"reference": spec}
        out[str(name)] = PfOutput(str(name), spec.get("reference"), spec.get("description") or None)
    return out


def _node(
    raw: Any,
    index: int,
    data: dict[str, Any],
    variants: dict[str, str],
    flow: PfFlow,
    file: str,
) -> PfNode | None:
    if not isinstance(raw, dict) or not raw.get("name"):
        flow.problems.append(FlowProblem(file, None, f"node #{index + 1} has no name"))
        return None
    name = str(raw["name"])
    if not raw.get("use_variants"):
        if name in variants:
            flow.problems.append(FlowProblem(file, name, "--variant: the node has no variants"))
        return PfNode(name, str(raw.get("type", "")), raw)
    spec = (data.get("node_variants") or {}).get(name)
    if not isinstance(spec, dict) or not isinstance(spec.get("variants"), dict):
        flow.problems.append(
            FlowProblem(file, name, "use_variants is set but node_variants has no entry for it")
        )
        return PfNode(name, "", raw, broken=True)
    chosen = variants.get(name) or spec.get("default_variant_id")
    variant = spec["variants"].get(chosen)
    if not isinstance(variant, dict) or not isinstance(variant.get("node"), dict):
        known = ", ".join(spec["variants"]) or "none"
        flow.problems.append(
            FlowProblem(file, name, f"variant '{chosen}' is not defined (variants: {known})")
        )
        return PfNode(name, "", raw, broken=True)
    merged = {**variant["node"], "name": name}
    others = [str(v) for v in spec["variants"] if v != chosen]
    return PfNode(name, str(merged.get("type", "")), merged, str(chosen), others)


def _check_references(flow: PfFlow, file: str) -> None:
    names = {n.name for n in flow.nodes}

    def check(owner: str | None, where: str, value: Any) -> None:
        ref = parse_ref(value)
        if ref is None:
            return
        if ref.kind == "input" and ref.name not in flow.inputs:
            declared = ", ".join(flow.inputs) or "none"
            flow.problems.append(
                FlowProblem(
                    file,
                    owner,
                    f"{where} refers to flow input '{ref.name}' ({ref.text}), which is not "
                    f"declared (inputs: {declared})",
                )
            )
        elif ref.kind == "node" and ref.name not in names:
            flow.problems.append(
                FlowProblem(
                    file,
                    owner,
                    f"{where} refers to node '{ref.name}' ({ref.text}), which does not exist",
                )
            )
        elif ref.kind == "node" and ref.section != "output":
            flow.problems.append(
                FlowProblem(file, owner, f"{where}: {ref.text}: a node's value is its 'output'")
            )

    for node in flow.nodes:
        for key, value in node.inputs.items():
            check(node.name, f"input '{key}'", value)
        if node.activate is not None:
            check(node.name, "activate.when", node.activate.get("when"))
    for out in flow.outputs.values():
        check(None, f"output '{out.name}'", out.reference)
