"""What a step accumulates while it runs, and what a model call needs from the step asking.

``Services`` (the model calls) takes any ``CallSite``; ``steps.base.StepEnv`` is the one the
executor builds. The Protocol keeps ``services`` from importing the step modules.
"""

from __future__ import annotations

from typing import Any, Protocol

from flowrun.results import CallRecord


class StepRecord:
    """What a step accumulates while it runs (shared by its foreach items).

    (A plain class, not a dataclass: one is made per step execution, and a dataclass's
    ``default_factory`` fields cost a call each.)
    """

    __slots__ = (
        "calls",
        "tool_calls",
        "warnings",
        "finish_reason",
        "model",
        "transcript",
        "kept_calls",
    )

    def __init__(
        self,
        calls: list[CallRecord] | None = None,
        tool_calls: list[dict[str, Any]] | None = None,
        warnings: list[str] | None = None,
        finish_reason: str | None = None,
        model: str | None = None,
        transcript: list[dict[str, Any]] | None = None,
        kept_calls: int = 0,
    ) -> None:
        self.calls: list[CallRecord] = [] if calls is None else calls
        self.tool_calls: list[dict[str, Any]] = [] if tool_calls is None else tool_calls
        self.warnings: list[str] = [] if warnings is None else warnings
        self.finish_reason = finish_reason
        self.model = model
        #: one entry per model call
        self.transcript: list[dict[str, Any]] = [] if transcript is None else transcript
        #: calls of foreach items kept from an earlier run (not made again)
        self.kept_calls = kept_calls


class CallSite(Protocol):
    """The step (or foreach item) a model call is made for."""

    step_id: str
    record: StepRecord

    @property
    def label(self) -> str: ...

    def setting(self, name: str) -> Any: ...

    def warn(self, message: str) -> None: ...
