"""What a step accumulates while it runs, and what a model call needs from the step asking.

``Services`` (the model calls) takes any ``CallSite``; ``steps.base.StepEnv`` is the one the
executor builds. The Protocol keeps ``services`` from importing the step modules.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from flowrun.results import CallRecord


@dataclass
class StepRecord:
    """What a step accumulates while it runs (shared by its foreach items)."""

    calls: list[CallRecord] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    model: str | None = None
    transcript: list[dict[str, Any]] = field(default_factory=list)  # one entry per model call
    kept_calls: int = 0  # calls of foreach items kept from an earlier run (not made again)


class CallSite(Protocol):
    """The step (or foreach item) a model call is made for."""

    step_id: str
    record: StepRecord

    @property
    def label(self) -> str: ...

    def setting(self, name: str) -> Any: ...

    def warn(self, message: str) -> None: ...
