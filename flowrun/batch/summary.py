"""What a batch gives back: one ``BatchResult`` per record, and the ``BatchSummary`` of a run."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from flowrun.results import CallRecord, CostReport, StepResult


def new_batch_id() -> str:
    """``batch-`` + UTC timestamp + random suffix (``flowrun resume`` tells batches by it)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    return f"batch-{stamp}-{secrets.token_hex(3)}"


@dataclass
class BatchResult:
    """The outcome of one record: its output line is ``to_json()``."""

    index: int
    status: str  # succeeded | failed | not_run (refused by a spent budget before any call)
    outputs: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_step: str | None = None
    cost: CostReport = field(default_factory=CostReport)
    extra: dict[str, Any] = field(default_factory=dict)
    line: int | None = None
    duration_s: float = 0.0
    steps: dict[str, StepResult] = field(default_factory=dict)
    new_calls: list[CallRecord] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"

    @property
    def cost_usd(self) -> float | None:
        """The record's dollars; None when a model it called is unpriced."""
        return None if self.cost.unpriced_models else self.cost.total_usd

    @property
    def warnings(self) -> list[str]:
        """What its steps warned about (a reply past the cap, an approximate count), once each."""
        found: list[str] = []
        for step in self.steps.values():
            found += step.warnings
        return list(dict.fromkeys(found)) if found else found  # (most records: none)

    def to_json(self) -> dict[str, Any]:
        """The record's line in the output file."""
        data: dict[str, Any] = {"index": self.index}
        if self.line is not None:
            data["line"] = self.line
        data["status"] = self.status
        if self.ok:
            data["outputs"] = self.outputs
        else:
            data["error"] = self.error
            if self.failed_step:
                data["failed_step"] = self.failed_step
        cost = self.cost_usd
        data["cost_usd"] = None if cost is None else round(cost, 8)
        data["usage"] = {
            "prompt_tokens": self.cost.prompt_tokens,
            "completion_tokens": self.cost.completion_tokens,
        }
        data["duration_s"] = round(self.duration_s, 4)
        warnings = self.warnings
        if warnings:
            data["warnings"] = warnings
        if self.extra:
            data["extra"] = self.extra
        return data


@dataclass
class BatchSummary:
    """Counts and cost of a batch run (this invocation), for progress and the final report."""

    batch_id: str | None = None
    total: int | None = None  # records in the input, when known (for ETA)
    done: int = 0  # records finished in this invocation
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0  # already done by an earlier run (--resume)
    not_run: int = 0  # records the budget stopped before they made any call (no output line)
    cost: CostReport = field(default_factory=CostReport)
    earlier_cost_usd: float = 0.0
    started: float = field(default_factory=time.perf_counter)
    duration_s: float = 0.0
    stopped: str | None = None  # why records were left unrun (the budget)
    interrupted: bool = False
    output: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    max_failures_listed: int = 20
    metrics: dict[str, Any] | None = None  # what the aggregate steps logged (None: none ran)
    metrics_records: int = 0  # how many records they ran over (the succeeded ones)
    aggregate_error: str | None = None  # an aggregate step failed
    warnings: dict[str, int] = field(default_factory=dict)  # each distinct warning: its records
    write_error: str | None = None  # the output could not be written (a full disk...)

    @property
    def pending(self) -> int | None:
        """Records a stop (a signal, a failed write of the output) left unfinished: not failed,
        pending, for the resume to run (or, via the Batch API, to submit and collect); None
        when the input's length is unknown (stdin)."""
        if not (self.interrupted or self.write_error) or self.total is None:
            return 0 if self.total is not None else None
        return max(0, self.total - self.done - self.not_run)

    @property
    def cost_usd(self) -> float:
        return self.cost.total_usd

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.failed or self.stopped or self.aggregate_error or self.write_error:
            return "failed"
        return "succeeded"

    def record(self, result: BatchResult) -> None:
        if result.status == "not_run":
            self.not_run += 1
            return
        self.done += 1
        if result.ok:
            self.succeeded += 1
        else:
            self.failed += 1
            if len(self.failures) < self.max_failures_listed:
                where = {"line": result.line} if result.line is not None else {}
                self.failures.append({"index": result.index, **where, "error": result.error})
        for call in result.new_calls:
            self.cost.add(call)
        for warning in result.warnings:
            self.warnings[warning] = self.warnings.get(warning, 0) + 1

    def to_json(self) -> dict[str, Any]:
        """The ``--json`` document of a batch."""
        data: dict[str, Any] = {
            "batch_id": self.batch_id,
            "status": self.status,
            "records": self.done + self.skipped,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "skipped": self.skipped,
            "not_run": self.not_run,
            "pending": self.pending,
            "output": self.output,
            "duration_s": round(self.duration_s, 4),
            "cost": self.cost.to_json(),
        }
        if self.earlier_cost_usd:
            data["earlier_cost_usd"] = round(self.earlier_cost_usd, 8)
        if self.stopped:
            data["stopped"] = self.stopped
        if self.failures:
            data["failures"] = self.failures
        if self.metrics is not None:
            data["metrics"] = self.metrics
            data["metrics_records"] = self.metrics_records
        if self.aggregate_error:
            data["aggregate_error"] = self.aggregate_error
        if self.warnings:
            data["warnings"] = [
                {"message": message, "records": count} for message, count in self.warnings.items()
            ]
        if self.write_error:
            data["write_error"] = self.write_error
        return data
