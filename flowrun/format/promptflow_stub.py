"""A stand-in for promptflow's ``@tool`` decorator, so converted flows run without promptflow.

The Python files of a promptflow flow start with ``from promptflow.core import tool`` (or
``from promptflow import tool``). ``flowrun convert promptflow`` leaves those files as they
are; when flowrun imports one of them for a tool step and promptflow is not installed,
``flowrun.format.imports`` (beside this module) calls ``install_promptflow_stub()`` and imports the file again.

The stub is three modules put in ``sys.modules``: ``promptflow`` and ``promptflow.core``, each
with a ``tool`` decorator that returns the function unchanged (``@tool`` and
``@tool(name=...)`` both work) and ``log_metric`` (``flowrun.metrics``: an aggregate step's
metrics), and ``promptflow.connections`` with ``OpenAIConnection``, ``AzureOpenAIConnection``
and ``CustomConnection`` filled from the environment (``promptflow_connections``). For flows
whose own Python calls promptflow-tools: ``promptflow.tools.common`` (``render_jinja_template``,
``parse_chat``, ``build_messages``: ``promptflow_common``), ``promptflow.tools.openai`` and
``promptflow.tools.aoai`` (``chat``, ``completion``, ``OpenAI``, ``AzureOpenAI``:
``provider.promptflow_tools``) and ``promptflow.contracts.multimedia`` (``Image``:
``promptflow_multimedia``). Nothing else of promptflow is provided: a file that imports
tracing or other promptflow modules still needs promptflow itself. The stub is never installed
while a real promptflow can be imported.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any

import flowrun.provider.promptflow_tools as promptflow_tools
from flowrun.format import promptflow_common, promptflow_multimedia
from flowrun.format.promptflow_connections import (
    AzureOpenAIConnection,
    CustomConnection,
    OpenAIConnection,
)
from flowrun.metrics import log_metric

__all__ = ["install_promptflow_stub", "tool"]


def tool(func: Callable[..., Any] | None = None, **_options: Any) -> Any:
    """promptflow's ``@tool``, minus promptflow: the decorated function is returned unchanged."""
    if func is not None and callable(func):
        return func

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        return f

    return decorate


def install_promptflow_stub() -> bool:
    """Put the stub ``promptflow`` and ``promptflow.core`` in ``sys.modules``.

    Returns False (and does nothing) when a real promptflow is importable or already loaded.
    """
    existing = sys.modules.get("promptflow")
    if existing is not None:
        return bool(getattr(existing, "__flowrun_stub__", False))
    if importlib.util.find_spec("promptflow") is not None:
        return False
    package = _module("promptflow", "Stand-in for promptflow's @tool, installed by flowrun.")
    package.__path__ = []  # a package, so "promptflow.core" resolves
    core = _module("promptflow.core", "Stand-in for promptflow.core's @tool, installed by flowrun.")
    package.core = core  # type: ignore[attr-defined]
    connections = types.ModuleType("promptflow.connections", "Stand-in connections (flowrun).")
    connections.__spec__ = importlib.machinery.ModuleSpec("promptflow.connections", None)
    for cls in (OpenAIConnection, AzureOpenAIConnection, CustomConnection):
        setattr(connections, cls.__name__, cls)
    connections.__flowrun_stub__ = True  # type: ignore[attr-defined]
    package.connections = connections  # type: ignore[attr-defined]
    sys.modules["promptflow"] = package
    sys.modules["promptflow.core"] = core
    sys.modules["promptflow.connections"] = connections
    for name, values in _parts().items():
        _submodule(name, values)
    return True


def _parts() -> dict[str, dict[str, Any]]:
    """The stand-in modules beyond ``@tool`` and connections, with what each provides."""
    common = {name: getattr(promptflow_common, name) for name in promptflow_common.__all__}
    tools = promptflow_tools
    return {
        "promptflow.tools": {},
        "promptflow.tools.common": common,
        "promptflow.tools.openai": {
            "chat": tools.openai_chat,
            "completion": tools.openai_completion,
            "OpenAI": tools.OpenAI,
        },
        "promptflow.tools.aoai": {
            "chat": tools.aoai_chat,
            "completion": tools.aoai_completion,
            "AzureOpenAI": tools.AzureOpenAI,
        },
        "promptflow.contracts": {},
        "promptflow.contracts.multimedia": {
            "Image": promptflow_multimedia.Image,
            "PFBytes": promptflow_multimedia.PFBytes,
        },
    }


def _submodule(name: str, values: dict[str, Any]) -> None:
    """``name`` in ``sys.modules`` holding ``values``, and as an attribute of its parent."""
    module = types.ModuleType(name, "Stand-in installed by flowrun (promptflow is not installed).")
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=not values)
    if not values:
        module.__path__ = []  # a package: its children resolve
    for key, value in values.items():
        setattr(module, key, value)
    module.__all__ = sorted(values)  # type: ignore[attr-defined]
    module.__flowrun_stub__ = True  # type: ignore[attr-defined]
    parent, _, child = name.rpartition(".")
    setattr(sys.modules[parent], child, module)
    sys.modules[name] = module


def _module(name: str, doc: str) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=name == "promptflow")
    module.tool = tool  # type: ignore[attr-defined]
    module.log_metric = log_metric  # type: ignore[attr-defined]
    module.__flowrun_stub__ = True  # type: ignore[attr-defined]
    module.__all__ = ["log_metric", "tool"]  # type: ignore[attr-defined]
    return module
