"""A python node's connection parameters (``conn: OpenAIConnection``, ``AzureOpenAIConnection``,
``CustomConnection``): the converted tool step passes the connection's name, as the node does,
and the stand-in ``promptflow.connections`` (``flowrun.format.promptflow_connections``) builds
the object from environment variables when the step runs. The report names them."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

from flowrun.convert.pf_flow import PfNode, parse_ref
from flowrun.convert.pf_python import ToolFunction
from flowrun.convert.report import Report
from flowrun.format.promptflow_connections import env_name

_KINDS = ("AzureOpenAIConnection", "OpenAIConnection", "CustomConnection")
_FIELDS = {
    "OpenAIConnection": ("api_key", "base_url", "OPENAI_API_KEY and OPENAI_BASE_URL"),
    "AzureOpenAIConnection": (
        "api_key",
        "api_base",
        "AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and OPENAI_API_VERSION",
    ),
}


def connection_setup(node: PfNode, function: ToolFunction, file: Path, report: Report) -> None:
    """Report, as something to set up before running, where each connection's values come from."""
    for name, raw in node.inputs.items():
        param = function.params.get(name)
        words = set(re.findall(r"\w+", param.annotation or "")) if param else set()
        kinds = [k for k in _KINDS if k in words]
        if not kinds or not isinstance(raw, str) or parse_ref(raw) is not None:
            continue
        parts = []
        for kind in kinds:
            if kind == "CustomConnection":
                keys = _keys_read(file, name)
                names = ", ".join(env_name(raw, k) for k in keys) or (
                    env_name(raw, "") + "_<KEY> for each key the code reads"
                )
                parts.append(f"as a CustomConnection: {names}")
            else:
                first, second, fallback = _FIELDS[kind]
                parts.append(
                    f"as an {kind}: {env_name(raw, first)} and {env_name(raw, second)} "
                    f"(or {fallback})"
                )
        report.add(
            node.name,
            f"connection '{raw}' ({name}: {param.annotation if param else ''})",
            "flowrun's stand-in builds it from environment variables, "
            + "; ".join(parts)
            + (
                f"; {env_name(raw, 'api_base')} makes it an Azure connection"
                if {"AzureOpenAIConnection", "OpenAIConnection"} <= set(kinds)
                else ""
            ),
            setup=True,
        )


def _keys_read(file: Path, param: str) -> list[str]:
    """The keys the file reads from ``param`` (``conn.key``, ``conn["key"]``), in order."""
    try:
        tree = ast.parse(file.read_text(encoding="utf-8"))
    except (OSError, SyntaxError, UnicodeDecodeError):
        return []
    keys: list[str] = []
    for node in ast.walk(tree):
        target: Any = None
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            target, key = node.value.id, node.attr
        elif isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
            target = node.value.id
            key = node.slice.value if isinstance(node.slice, ast.Constant) else None
        if target == param and isinstance(key, str) and key not in ("keys", "get", "items"):
            keys.append(key)
    return list(dict.fromkeys(keys))
