"""Model calls made inside a tool step, by a flow's own Python through flowrun's stand-in
promptflow tools (``promptflow_tools``): reported here while the step runs, so the step counts
their tokens and cost as its own calls (``engine.steps.tool``).

Calls a tool makes any other way (the openai SDK directly, ``requests``) are not seen.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

from flowrun.results import Usage

__all__ = ["SideCall", "collecting", "report"]


@dataclass
class SideCall:
    """One model call: the model asked for, its usage (None: the server sent none) and how
    long it took."""

    model: str
    usage: Usage | None
    duration_s: float


_CALLS: contextvars.ContextVar[list[SideCall] | None] = contextvars.ContextVar(
    "flowrun_side_calls", default=None
)


def report(model: str, usage: Usage | None, duration_s: float) -> None:
    """Record a call for the tool step running now (nothing happens outside one)."""
    calls = _CALLS.get()
    if calls is not None:
        calls.append(SideCall(model, usage, round(duration_s, 4)))


@contextlib.contextmanager
def collecting(into: list[SideCall]) -> Iterator[list[SideCall]]:
    """While the block runs (and in the threads it starts with its context), calls go to
    ``into``."""
    token = _CALLS.set(into)
    try:
        yield into
    finally:
        _CALLS.reset(token)
