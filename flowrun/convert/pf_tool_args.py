"""A python node's inputs -> its tool step's ``args``, with promptflow's rules kept.

* a literal takes the parameter's annotated type (promptflow converts ``count: "3"`` for an
  ``int``); a literal that looks like a template is quoted so flowrun does not render it;
* a reference becomes ``{{ inputs.x }}`` / ``{{ steps.node.output... }}``; for a node that may
  be bypassed, the function's own literal default is passed instead of null, as promptflow does;
* what flows in is checked against the parameter's type hint (``pf_types``): flowrun validates
  tool arguments, promptflow does not, so an obvious mismatch is reported.
"""

from __future__ import annotations

from typing import Any

from flowrun.convert.pf_flow import PfFlow, PfNode, Ref, access, parse_ref
from flowrun.convert.pf_prompt import jinja_literal
from flowrun.convert.pf_python import Param, PythonToolError, ToolFunction, find_tool
from flowrun.convert.pf_types import Kinds, input_kinds, mismatch, return_kinds
from flowrun.convert.pf_values import coerce, strings
from flowrun.convert.report import Report

_LITERAL_KINDS: tuple[tuple[type, str], ...] = (
    (bool, "boolean"), (int, "integer"), (float, "number"), (str, "string"), (list, "array"),
    (tuple, "array"), (dict, "object"),
)  # fmt: skip
_PYTHON = {
    "text": "str", "an integer": "int", "a number": "float", "a boolean": "bool",
    "a list": "list", "an object": "dict", "None": "None",
}  # fmt: skip


def skipped(step: str) -> str:
    """The template expression that is true when ``step`` was skipped (bypassed)."""
    return f"steps{access(step)}.skipped"


class ToolArgs:
    """Builds the ``args`` of the tool steps of one flow."""

    def __init__(self, flow: PfFlow, bypassable: set[str], report: Report) -> None:
        self.flow = flow
        self.bypassable = bypassable
        self.report = report
        self._returns: dict[str, Kinds | None] = {}

    def args(self, node: PfNode, function: ToolFunction) -> dict[str, Any]:
        return {name: self.arg(node, function, name, raw) for name, raw in node.inputs.items()}

    def arg(self, node: PfNode, function: ToolFunction, name: str, raw: Any) -> Any:
        param = function.params.get(name)
        ref = parse_ref(raw)
        if ref is None:
            value = coerce(raw, param.annotation if param else None)
            if any("{{" in s or "{%" in s or "{#" in s for s in strings(value)):
                return "{{ " + jinja_literal(value) + " }}"
            return value
        if node.aggregation:  # the values are lists over the records: no bypass
            if param is not None and mismatch(frozenset({"array"}), param.annotation):
                hint = f"{param.name}: {param.annotation}"
                self.report.add(
                    node.name,
                    f"input '{param.name}'",
                    "in an aggregation node every input is the list of every record's values; "
                    f"flowrun checks tool arguments against type hints and {hint} refuses a "
                    f"list (promptflow passes it unchecked): widen it ({hint} | list) in the "
                    "function's file",
                )
            return "{{ " + ref.expr() + " }}"
        bypassable = ref.kind == "node" and ref.name in self.bypassable
        # The node still runs with the other bypassed only when it reads another node too.
        runs_without = bypassable and any(n != ref.name for n in _node_refs(node))
        when_bypassed: Kinds = frozenset({"null"}) if runs_without else frozenset()
        out = "{{ " + ref.expr() + " }}"
        if bypassable and param and param.has_default:
            if param.literal_default:
                when_bypassed = frozenset({_kind(param.default)}) if runs_without else frozenset()
                default = jinja_literal(param.default)
                out = f"{{{{ {ref.expr()} if not {skipped(ref.name)} else {default} }}}}"
            else:
                self.report.add(
                    node.name,
                    f"input '{name}'",
                    f"when node '{ref.name}' is bypassed promptflow passes {function.name}'s "
                    "own default, which is not a literal; flowrun passes null",
                )
        if param is not None:
            self.check_type(node, param, ref, when_bypassed)
        return out

    def check_type(self, node: PfNode, param: Param, ref: Ref, when_bypassed: Kinds) -> None:
        """Report a value that flows in and that the parameter's type hint refuses."""
        kinds = self.kinds(ref)
        refused = mismatch((kinds or frozenset()) | when_bypassed, param.annotation)
        if not refused:
            return
        hint = f"{param.name}: {param.annotation}"
        if refused == ["None"] and "null" in when_bypassed:
            because = f"node '{ref.name}' may be bypassed, and then promptflow passes None"
        else:
            because = f"{ref.text} is {' or '.join(refused)}"
        fix = f"widen it ({hint} | {' | '.join(_PYTHON[word] for word in refused)})"
        self.report.add(
            node.name,
            f"input '{param.name}'",
            f"{because}; flowrun checks tool arguments against type hints and {hint} refuses "
            f"it (promptflow passes it unchecked): {fix} in the function's file",
        )

    def kinds(self, ref: Ref) -> Kinds | None:
        """The kinds of the value a reference reads, when the flow says (None: unknown)."""
        if ref.path:
            return None
        if ref.kind == "input":
            spec = self.flow.inputs.get(ref.name)
            return input_kinds(spec.type) if spec else None
        source = self.flow.node(ref.name)
        if source is None or source.broken or source.aggregation:
            return None
        if source.type == "prompt":
            return frozenset({"string"})
        if source.type == "llm":
            calls = any(source.inputs.get(k) for k in ("tools", "functions"))
            return None if calls else frozenset({"string"})
        if source.type == "python":
            if source.name not in self._returns:
                self._returns[source.name] = self._return_kinds(source)
            return self._returns[source.name]
        return None

    def _return_kinds(self, node: PfNode) -> Kinds | None:
        path = node.source.get("path")
        if node.source.get("type", "code") != "code" or not path:
            return None
        try:
            return return_kinds(find_tool(self.flow.dir / str(path)).returns)
        except (PythonToolError, OSError, UnicodeDecodeError):
            return None


def _node_refs(node: PfNode) -> set[str]:
    refs = (parse_ref(v) for v in node.inputs.values())
    return {r.name for r in refs if r is not None and r.kind == "node"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return next((kind for t, kind in _LITERAL_KINDS if isinstance(value, t)), "object")
