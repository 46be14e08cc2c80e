"""What a run produces: step results, the cost report and the run result (with its JSON shape).

May import: ``errors``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import Any, TypeVar

T = TypeVar("T")


def _pickled_by_position(cls: type[T]) -> type[T]:
    """Pickle (and copy) a dataclass as its constructor and its field values in order: no
    field names in each pickle, and one call builds it back (Batch API records' waiting
    steps are kept by these values, marshalled, and built back once or twice each)."""
    values = attrgetter(*(f.name for f in fields(cls)))  # type: ignore[arg-type]

    def __reduce__(self: T) -> tuple[type[T], tuple[Any, ...]]:
        return cls, values(self)

    cls.__reduce__ = __reduce__  # type: ignore[assignment,method-assign]
    return cls


@_pickled_by_position
@dataclass
class Usage:
    """Token counts of one call or a sum of calls (reasoning and cached are subsets)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_tokens + other.cached_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )

    def to_dict(self) -> dict[str, int]:
        # by hand: dataclasses.asdict deep-copies, and this runs for every step of every record
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(**{k: int(data.get(k) or 0) for k in cls.__dataclass_fields__})


@_pickled_by_position
@dataclass
class CallRecord:
    """One model call: which model, what it used and cost (None: the model is unpriced).

    ``failed``: the call never returned a reply (kept for its ``retries``; it costs nothing
    and is left out of the cost report).
    """

    model: str
    usage: Usage
    cost_usd: float | None
    duration_s: float = 0.0
    retries: int = 0
    finish_reason: str | None = None
    cached: bool = False
    batch: bool = False
    failed: bool = False
    #: the server sent no usage; it was counted locally with tiktoken (see provider/usage.py)
    approximate: bool = False
    #: answered by ``--mock``'s fake model: no dollars (``cost_usd`` is None), not unpriced
    mock: bool = False

    def to_dict(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in self.__dataclass_fields__}
        d["usage"] = self.usage.to_dict()
        return d

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CallRecord:
        data = dict(data)
        data["usage"] = Usage.from_dict(data.get("usage"))
        return cls(**data)


@_pickled_by_position
@dataclass
class StepResult:
    """The outcome of one step (all its foreach items, tool rounds and repairs together)."""

    id: str
    status: str  # succeeded | failed | skipped
    output: Any = None
    model: str | None = None
    calls: list[CallRecord] = field(default_factory=list)
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    finish_reason: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    # what each model call sent and got (stored beside the record, not in it; see transcripts.py)
    transcript: list[dict[str, Any]] = field(default_factory=list, repr=False)
    #: calls of foreach items kept from an earlier run of this run (a resume did not make them)
    kept_calls: int = 0
    #: ``transcript`` as the store keeps it (``dump_transcript``'s text), once it was written
    #: or when the step was read back from a batch's stored steps (``transcript`` is then empty)
    stored_transcript: str | None = field(default=None, repr=False, compare=False)

    @property
    def skipped(self) -> bool:
        return self.status == "skipped"

    @property
    def usage(self) -> Usage:
        prompt = completion = cached = reasoning = 0
        for call in self.calls:
            u = call.usage
            prompt += u.prompt_tokens
            completion += u.completion_tokens
            cached += u.cached_tokens
            reasoning += u.reasoning_tokens
        return Usage(prompt, completion, cached, reasoning)

    @property
    def cost_usd(self) -> float:
        """Dollars of the priced calls (see ``priced``: unpriced calls are not $0, just unknown)."""
        return sum(c.cost_usd or 0.0 for c in self.calls)

    @property
    def priced(self) -> bool:
        """Whether every call of the step has a price."""
        return all(c.cost_usd is not None for c in self.calls)

    @property
    def known_cost_usd(self) -> float | None:
        """The step's cost, or None when a call used an unpriced model."""
        return self.cost_usd if self.priced else None

    @property
    def retries(self) -> int:
        """Retries of every call, including one that failed after its retries."""
        return sum(c.retries for c in self.calls)

    @property
    def replied_calls(self) -> list[CallRecord]:
        """The calls that returned a reply (what the cost report counts)."""
        return [c for c in self.calls if not c.failed]

    @property
    def mock(self) -> bool:
        """Whether a call was answered by ``--mock``'s fake model."""
        return any(c.mock for c in self.calls)

    @property
    def approximate(self) -> bool:
        """Whether a call's usage was counted locally (the server sent none)."""
        return any(c.approximate for c in self.calls)

    @property
    def cached(self) -> bool:
        """Whether every call of the step was answered from the response cache ($0)."""
        replied = self.replied_calls
        return bool(replied) and all(c.cached for c in replied)

    def template_view(self) -> dict[str, Any]:
        """What templates see as ``steps.<id>``."""
        calls = self.calls
        if len(calls) == 1:  # (most steps: one call, read without a loop)
            call = calls[0]
            usage = call.usage.to_dict()
            cost = None if call.cost_usd is None else 0 + (call.cost_usd or 0.0)  # (as sum())
        else:
            usage, cost = self.usage.to_dict(), self.known_cost_usd
        return {
            "output": self.output,
            "usage": usage,
            "finish_reason": self.finish_reason,
            "skipped": self.status == "skipped",
            "status": self.status,
            "tool_calls": self.tool_calls,
            "cost_usd": cost,
            "model": self.model,
        }

    def to_json(self) -> dict[str, Any]:
        """The step's entry in ``--json`` output."""
        calls = self.calls
        if len(calls) == 1:  # (most steps: one call, read straight from it, not per field)
            call = calls[0]
            usage = call.usage.to_dict()
            cost = None if call.cost_usd is None else round(0 + (call.cost_usd or 0.0), 8)
            replied, retries = (0 if call.failed else 1), call.retries
            cached = bool(replied) and call.cached
            approximate, mock = call.approximate, call.mock
        else:
            usage = self.usage.to_dict()
            cost = round(self.cost_usd, 8) if self.priced else None
            replied, retries = len(self.replied_calls), self.retries
            cached, approximate, mock = self.cached, self.approximate, self.mock
        data: dict[str, Any] = {
            "status": self.status,
            "output": self.output,
            "model": self.model,
            "usage": usage,
            "cost_usd": cost,
            "duration_s": round(self.duration_s, 4),
            "calls": replied,
            "retries": retries,
        }
        if cached:
            data["cached"] = True
        if approximate:
            data["approximate_usage"] = True
        if mock:
            data["mock"] = True
        if self.finish_reason:
            data["finish_reason"] = self.finish_reason
        if self.tool_calls:
            data["tool_calls"] = self.tool_calls
        if self.error:
            data["error"] = self.error
        if self.warnings:
            data["warnings"] = self.warnings
        return data

    def to_record(self) -> dict[str, Any]:
        """Everything needed to rebuild this result (the run store keeps it)."""
        return {
            "id": self.id,
            "status": self.status,
            "output": self.output,
            "model": self.model,
            "calls": [c.to_dict() for c in self.calls],
            "tool_calls": self.tool_calls,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "warnings": self.warnings,
            "duration_s": self.duration_s,
        }

    @classmethod
    def from_record(cls, data: dict[str, Any]) -> StepResult:
        data = dict(data)
        data["calls"] = [CallRecord.from_dict(c) for c in data.get("calls") or []]
        return cls(**data)


@dataclass
class ModelCost:
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    usd: float | None = 0.0


@dataclass
class CostReport:
    """Tokens and dollars of a run, in total and by model; unpriced models are listed, not $0."""

    total_usd: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    calls: int = 0
    by_model: dict[str, ModelCost] = field(default_factory=dict)
    unpriced_models: list[str] = field(default_factory=list)
    batch_discount: bool = False
    #: calls whose usage the server did not report (counted locally with tiktoken)
    approximate_calls: int = 0
    #: calls answered by ``--mock``'s fake model (no dollars)
    mock_calls: int = 0

    @classmethod
    def from_calls(cls, calls: list[CallRecord]) -> CostReport:
        report = cls()
        for call in calls:
            report.add(call)
        return report

    def add(self, call: CallRecord) -> None:
        if call.failed:
            return
        u = call.usage
        prompt, completion = u.prompt_tokens, u.completion_tokens
        cached, reasoning = u.cached_tokens, u.reasoning_tokens
        self.calls += 1
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        self.cached_tokens += cached
        self.reasoning_tokens += reasoning
        self.batch_discount = self.batch_discount or call.batch
        self.approximate_calls += call.approximate
        entry = self.by_model.get(call.model)
        if entry is None:
            entry = self.by_model[call.model] = ModelCost()
        entry.calls += 1
        entry.prompt_tokens += prompt
        entry.completion_tokens += completion
        entry.cached_tokens += cached
        entry.reasoning_tokens += reasoning
        if call.mock:
            self.mock_calls += 1
            entry.usd = None
        elif call.cost_usd is None:
            entry.usd = None
            if call.model not in self.unpriced_models:
                self.unpriced_models.append(call.model)
        else:
            self.total_usd += call.cost_usd
            if entry.usd is not None:
                entry.usd += call.cost_usd

    def to_json(self) -> dict[str, Any]:
        return {
            # unknown when a call in it is unpriced (never $0); priced_usd is the known part
            "total_usd": None
            if self.unpriced_models or self.mock_calls
            else round(self.total_usd, 8),
            "priced_usd": round(self.total_usd, 8),
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "calls": self.calls,
            "by_model": {
                m: {
                    "calls": c.calls,
                    "prompt_tokens": c.prompt_tokens,
                    "completion_tokens": c.completion_tokens,
                    "cached_tokens": c.cached_tokens,
                    "reasoning_tokens": c.reasoning_tokens,
                    "usd": None if c.usd is None else round(c.usd, 8),
                }
                for m, c in self.by_model.items()
            },
            "unpriced_models": list(self.unpriced_models),
            "batch_discount": self.batch_discount,
            "approximate_calls": self.approximate_calls,
            "mock": self.mock_calls > 0,
        }


@dataclass
class RunResult:
    """A finished (or failed) run: status, outputs, every step and the cost report."""

    run_id: str
    status: str  # succeeded | failed | interrupted
    outputs: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepResult] = field(default_factory=dict)
    cost: CostReport = field(default_factory=CostReport)
    error: str | None = None
    failed_step: str | None = None
    warnings: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    metrics: dict[str, Any] | None = None  #: what aggregate steps logged (None: none ran)
    #: a resume: the steps kept from before it (their calls are in the cost, not made again)
    kept_steps: list[str] = field(default_factory=list)
    #: a resume: what attempts of the steps it ran again had paid before (not in ``cost``)
    earlier_usd: float = 0.0

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document of the spec."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "status": self.status,
            "outputs": self.outputs,
            "steps": {sid: s.to_json() for sid, s in self.steps.items()},
            "cost": self.cost.to_json(),
            "duration_s": round(self.duration_s, 4),
        }
        if self.error:
            data["error"] = self.error
            data["failed_step"] = self.failed_step
        if self.metrics is not None:
            data["metrics"] = self.metrics
        if self.warnings:
            data["warnings"] = self.warnings
        if self.kept_steps:
            data["kept_steps"] = self.kept_steps
        if self.earlier_usd:
            data["earlier_attempts_usd"] = round(self.earlier_usd, 8)
        return data


def seconds_text(value: float | None, unknown: str = "-") -> str:
    """A duration as the history shows it: ``4.2s``, ``3m07s``, ``2h05m`` (``unknown``: None)."""
    if value is None:
        return unknown
    if value < 60:
        return f"{value:.1f}s"
    minutes, secs = divmod(int(value), 60)
    return f"{minutes}m{secs:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def usd_text(value: float | None, note: str | None = None) -> str:
    """A cost as people read it: dollars, or why there are none (``note``: "mock" for a
    ``--mock`` run, else "unpriced")."""
    return (note or "unpriced") if value is None else f"${value:.6f}"
