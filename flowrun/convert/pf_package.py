"""promptflow's package tools that have a flowrun step of their own.

* ``promptflow.tools.embedding.embedding`` (inputs ``connection``, ``deployment_name`` or
  ``model``, ``input``) -> an ``embed`` step: one text in, one vector out, as promptflow gives.
"""

from __future__ import annotations

from typing import Any

from flowrun.convert.pf_flow import PfNode, parse_ref
from flowrun.convert.pf_llm import connection_notes
from flowrun.convert.pf_prompt import jinja_literal
from flowrun.convert.report import Report

EMBEDDING = "promptflow.tools.embedding.embedding"


def package_step(node: PfNode, report: Report) -> tuple[dict[str, Any], str] | None:
    """The step for a package tool flowrun has, or None."""
    tool = node.source.get("tool")
    if tool != EMBEDDING:
        return None
    inputs = node.inputs
    raw = inputs.get("input")
    ref = parse_ref(raw)
    value = "{{ " + (ref.expr() if ref is not None else jinja_literal(raw)) + " }}"
    step: dict[str, Any] = {
        "type": "embed",
        "description": f"promptflow embedding node '{node.name}'",
    }
    model = inputs.get("model") or inputs.get("deployment_name")
    if model and parse_ref(model) is None:
        step["model"] = str(model)
    else:
        report.add(node.name, "model", "no fixed model or deployment_name; flowrun's default")
    step["input"] = value
    connection_notes(node, report)
    return step, "embed step"
