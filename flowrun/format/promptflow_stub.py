"""A stand-in for promptflow's ``@tool`` decorator, so converted flows run without promptflow.

The Python files of a promptflow flow start with ``from promptflow.core import tool`` (or
``from promptflow import tool``). ``flowrun convert promptflow`` leaves those files as they
are; when flowrun imports one of them for a tool step and promptflow is not installed,
``flowrun.format.imports`` (beside this module) calls ``install_promptflow_stub()`` and imports the file again.

The stub is three modules put in ``sys.modules``: ``promptflow`` and ``promptflow.core``, each
with a ``tool`` decorator that returns the function unchanged (``@tool`` and
``@tool(name=...)`` both work) and ``log_metric`` (``flowrun.metrics``: an aggregate step's
metrics), and ``promptflow.connections`` with ``OpenAIConnection``, ``AzureOpenAIConnection``
and ``CustomConnection`` filled from the environment (``promptflow_connections``). Nothing
else of promptflow is provided: a file that imports tracing or other promptflow modules still
needs promptflow itself. The stub is never installed while a real promptflow can be imported.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Callable
from typing import Any

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
    return True


def _module(name: str, doc: str) -> types.ModuleType:
    module = types.ModuleType(name, doc)
    module.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=name == "promptflow")
    module.tool = tool  # type: ignore[attr-defined]
    module.log_metric = log_metric  # type: ignore[attr-defined]
    module.__flowrun_stub__ = True  # type: ignore[attr-defined]
    module.__all__ = ["log_metric", "tool"]  # type: ignore[attr-defined]
    return module
