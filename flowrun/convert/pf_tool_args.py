"""A python node's inputs -> its tool step's ``args``, with promptflow's rules kept.

* a literal takes the parameter's annotated type (promptflow converts ``count: "3"`` for an
  ``int``); a literal that looks like a template is quoted so flowrun does not render it;
* a reference becomes ``{{ inputs.x }}`` / ``{{ steps.node.output... }}``; for a node that may
  be bypassed, the function's own literal default is passed instead of null, as promptflow does;
* the step is written with ``check_args: false``: promptflow passes node values to the function
  whatever its type hints say (a float into ``score: str``, every record's list into an
  aggregation's ``metrics: str``), and so does the converted step.
"""

from __future__ import annotations

from typing import Any

from flowrun.convert.pf_flow import PfFlow, PfNode, access, parse_ref
from flowrun.convert.pf_prompt import jinja_literal
from flowrun.convert.pf_python import ToolFunction
from flowrun.convert.pf_values import coerce, strings
from flowrun.convert.report import Report


def skipped(step: str) -> str:
    """The template expression that is true when ``step`` was skipped (bypassed)."""
    return f"steps{access(step)}.skipped"


class ToolArgs:
    """Builds the ``args`` of the tool steps of one flow."""

    def __init__(self, flow: PfFlow, bypassable: set[str], report: Report) -> None:
        self.flow = flow
        self.bypassable = bypassable
        self.report = report

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
            return "{{ " + ref.expr() + " }}"
        out = "{{ " + ref.expr() + " }}"
        if ref.kind == "node" and ref.name in self.bypassable and param and param.has_default:
            if param.literal_default:
                default = jinja_literal(param.default)
                out = f"{{{{ {ref.expr()} if not {skipped(ref.name)} else {default} }}}}"
            else:
                self.report.add(
                    node.name,
                    f"input '{name}'",
                    f"when node '{ref.name}' is bypassed promptflow passes {function.name}'s "
                    "own default, which is not a literal; flowrun passes null",
                )
        return out
