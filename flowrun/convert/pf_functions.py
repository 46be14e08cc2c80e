"""``functions`` / ``function_call`` on a promptflow ``llm`` node -> flowrun ``tools:``.

promptflow sends the node's ``functions`` (OpenAI's legacy function calling) and returns the
reply's message, ``function_call`` and all, for the flow's own nodes to act on. flowrun's chat
step runs the loop itself: each function named in ``functions`` that is a top-level Python
function in the flow's folder becomes a workflow tool (its name, and the description and JSON
schema ``functions`` gives, so the model sees what promptflow showed it), the step lists them in
``tools:``, and ``function_call`` becomes ``tool_choice``. A function not found in the flow's
Python files is reported, and the step gets no tools.
"""

from __future__ import annotations

import ast
import contextlib
import json
from pathlib import Path
from typing import Any

from flowrun.convert.pf_flow import PfNode, parse_ref
from flowrun.convert.report import Report


def function_tools(
    node: PfNode, folder: Path, report: Report
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """``(workflow tools, the chat step's fields)`` for the node's ``functions``; empty when it
    has none or one cannot be converted (reported)."""
    raw = node.inputs.get("functions")
    if raw in (None, "", [], {}) or parse_ref(raw) is not None:
        if parse_ref(raw) is not None:
            report.add(node.name, f"functions: {raw}", "flowrun tools are fixed in the file")
        return {}, {}
    specs = _as_list(raw)
    if specs is None:
        report.add(node.name, "functions", "not a JSON list of function definitions")
        return {}, {}
    defined = _python_functions(folder)
    tools: dict[str, dict[str, Any]] = {}
    missing: list[str] = []
    for spec in specs:
        name = str(spec.get("name") or "")
        if name not in defined:
            missing.append(name or "?")
            continue
        tool: dict[str, Any] = {"function": f"{defined[name]}:{name}"}
        if spec.get("description"):
            tool["description"] = str(spec["description"])
        if isinstance(spec.get("parameters"), dict):
            tool["parameters"] = spec["parameters"]
        tools[name] = tool
    if missing:
        report.add(
            node.name,
            "functions",
            f"{', '.join(missing)}: not a Python function in the flow's folder; declare it "
            "under tools: (module:callable) and list it in the step's tools:",
        )
        return {}, {}
    fields: dict[str, Any] = {"tools": list(tools)}
    choice = _tool_choice(node.inputs.get("function_call"))
    if choice is not None:
        fields["tool_choice"] = choice
    report.add(
        node.name,
        "functions",
        f"flowrun tools ({', '.join(tools)}): the step calls the Python function the model "
        "asks for, sends its result back and its output is the model's final text (sent as "
        "tools, not functions); promptflow returned the message with the function_call for "
        "the flow's own nodes to run",
    )
    return tools, fields


def _as_list(raw: Any) -> list[dict[str, Any]] | None:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if isinstance(raw, list) and all(isinstance(item, dict) for item in raw):
        return raw
    return None


def _tool_choice(raw: Any) -> str | None:
    if isinstance(raw, str) and raw.strip().startswith("{"):
        with contextlib.suppress(ValueError):
            raw = json.loads(raw)
    if isinstance(raw, dict) and raw.get("name"):
        return str(raw["name"])
    if isinstance(raw, str) and raw.strip() in ("auto", "none"):
        return raw.strip()
    return None


def _python_functions(folder: Path) -> dict[str, str]:
    """Top-level function name -> module name, over the ``.py`` files in ``folder``."""
    found: dict[str, str] = {}
    for path in sorted(folder.glob("*.py")):
        if not path.stem.isidentifier():
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (OSError, SyntaxError, UnicodeDecodeError):
            continue
        for item in tree.body:
            if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.setdefault(item.name, path.stem)
    return found
