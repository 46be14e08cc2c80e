"""Workflow files with tool modules next to them, written into a test's tmp dir."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path
from typing import Any


def make_flow(
    folder: Path, workflow: str, tools_code: str | None = None, name: str = "wf.yaml"
) -> Path:
    """Write ``workflow`` (dedented) and, when given, a tool module next to it.

    ``TOOLS:`` in the workflow text names that module (a unique name per call, so modules
    of different tests never collide in ``sys.modules``).
    """
    module = f"tools_{uuid.uuid4().hex[:10]}"
    if tools_code is not None:
        (folder / f"{module}.py").write_text(textwrap.dedent(tools_code), encoding="utf-8")
    path = folder / name
    path.write_text(textwrap.dedent(workflow).replace("TOOLS:", f"{module}:"), encoding="utf-8")
    return path


def module_of(wf: Any, function_name: str) -> dict[str, Any]:
    """The globals of the module that defines a workflow's function ``function_name``."""
    for spec, function in wf.functions.items():
        if spec.endswith(f":{function_name}"):
            return function.__globals__
    raise KeyError(function_name)
