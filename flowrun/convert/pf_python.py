"""Reading a promptflow ``python`` node's file without running it: its ``@tool`` function.

promptflow calls the one module-level function decorated with ``@tool`` in the node's source
file, whatever its name. The file is parsed with ``ast`` (not imported), so conversion never
runs user code and works without promptflow installed.
"""

from __future__ import annotations

import ast
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowrun.errors import PythonToolError as PythonToolError

# What the stand-in promptflow (flowrun.format.promptflow_stub) provides.
_SHIMMED = {
    (module, name)
    for module in ("promptflow", "promptflow.core")
    for name in ("tool", "log_metric")
} | {
    ("promptflow.connections", name)
    for name in ("OpenAIConnection", "AzureOpenAIConnection", "CustomConnection")
} | {
    (module, name)
    for module, names in {
        "promptflow.tools.common": (
            "render_jinja_template", "parse_chat", "build_messages", "to_bool",
            "convert_to_chat_list", "ChatInputList", "VALID_ROLES",
        ),
        "promptflow.tools.openai": ("chat", "completion", "OpenAI"),
        "promptflow.tools.aoai": ("chat", "completion", "AzureOpenAI"),
        "promptflow.contracts.multimedia": ("Image", "PFBytes"),
        "promptflow.tools": ("common", "openai", "aoai"),
        "promptflow.contracts": ("multimedia",),
    }.items()
    for name in names
}  # fmt: skip
_PACKAGES = {module for module, _ in _SHIMMED} | {"promptflow.tools", "promptflow.contracts"}
_NO_LITERAL: Any = object()


@dataclass
class Param:
    name: str
    annotation: str | None = None  #: the annotation's source text
    default: Any = _NO_LITERAL  #: the default as a Python value, when it is a literal
    has_default: bool = False

    @property
    def literal_default(self) -> bool:
        return self.default is not _NO_LITERAL


@dataclass
class ToolFunction:
    """The ``@tool`` function of a python node's file."""

    name: str
    params: dict[str, Param] = field(default_factory=dict)
    var_keyword: bool = False
    unsupported_imports: list[str] = field(default_factory=list)


def find_tool(path: Path) -> ToolFunction:
    """The ``@tool`` function in ``path``; raises ``PythonToolError`` or ``OSError``."""
    source = path.read_text(encoding="utf-8")
    try:
        tree = ast.parse(source, filename=str(path))
    except SyntaxError as exc:
        raise PythonToolError(f"line {exc.lineno}: Python syntax error: {exc.msg}") from None
    aliases, unsupported = _promptflow_imports(tree)
    found = [
        node
        for node in tree.body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and any(_is_tool_decorator(d, aliases) for d in node.decorator_list)
    ]
    if not found:
        methods = [
            f"{cls.name}.{fn.name}"
            for cls in tree.body
            if isinstance(cls, ast.ClassDef)
            for fn in cls.body
            if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef))
            and any(_is_tool_decorator(d, aliases) for d in fn.decorator_list)
        ]
        if methods:
            raise PythonToolError(
                f"the @tool function is a method ({methods[0]}); class-based tools are not converted"
            )
        raise PythonToolError("no function decorated with @tool")
    if len(found) > 1:
        names = ", ".join(f.name for f in found)
        raise PythonToolError(f"more than one function decorated with @tool ({names})")
    return _describe(found[0], unsupported)


def _describe(fn: ast.FunctionDef | ast.AsyncFunctionDef, unsupported: list[str]) -> ToolFunction:
    args = fn.args
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults))
    defaults += list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True))
    pairs += list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    params: dict[str, Param] = {}
    for arg, default in pairs:
        param = Param(arg.arg, ast.unparse(arg.annotation) if arg.annotation else None)
        if default is not None:
            param.has_default = True
            with contextlib.suppress(ValueError, SyntaxError, TypeError):
                param.default = ast.literal_eval(default)
        params[arg.arg] = param
    return ToolFunction(fn.name, params, args.kwarg is not None, unsupported)


def _promptflow_imports(tree: ast.Module) -> tuple[set[str], list[str]]:
    """Names bound to promptflow's ``tool`` and the promptflow imports the shim lacks."""
    aliases = {"tool"}
    unsupported: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "promptflow":
            for alias in node.names:
                if (node.module, alias.name) in _SHIMMED:
                    if alias.name == "tool":
                        aliases.add(alias.asname or alias.name)
                else:
                    unsupported.append(f"from {node.module} import {alias.name}")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "promptflow" and alias.name not in _PACKAGES:
                    unsupported.append(f"import {alias.name}")
    return aliases, unsupported


def _is_tool_decorator(node: ast.expr, aliases: set[str]) -> bool:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id in aliases
    return isinstance(node, ast.Attribute) and node.attr == "tool"
