"""One module per step type; ``RUNNERS`` maps a step's ``type`` to its runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from flowrun.engine.steps.base import StepEnv, StepError
from flowrun.engine.steps.chat import run_chat
from flowrun.engine.steps.embed import run_embed
from flowrun.engine.steps.extract import run_extract
from flowrun.engine.steps.tool import run_tool

Runner = Callable[[StepEnv], Awaitable[Any]]
RUNNERS: dict[str, Runner] = {
    "chat": run_chat,
    "extract": run_extract,
    "tool": run_tool,
    "embed": run_embed,
}

__all__ = ["RUNNERS", "Runner", "StepEnv", "StepError"]
