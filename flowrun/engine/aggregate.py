"""Aggregate steps (``aggregate: true``): run once after every record, over lists of values.

In a batch, each record runs the workflow without its aggregate steps; the runner keeps each
succeeded record's inputs and step views (``AggregateRows``), and after the last record the
aggregate steps run once, in order, with ``inputs.X`` and ``steps.Y.output`` (and every other
field of ``steps.Y``) as lists over those records in input order. A single run is a batch of
one record. What the step's function gives to ``log_metric(name, value)`` becomes the run's
metrics (``flowrun.metrics``; promptflow's ``log_metric`` is the same function in the
stand-in promptflow, ``flowrun.format.promptflow_stub``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flowrun.engine.services import Services
from flowrun.format.spec import aggregate_steps
from flowrun.format.workflow import LoadedWorkflow
from flowrun.metrics import collecting
from flowrun.results import RunResult, StepResult


@dataclass
class AggregateRows:
    """The succeeded records' values that aggregate steps read, in input order."""

    wf: LoadedWorkflow
    rows: dict[int, tuple[dict[str, Any], dict[str, dict[str, Any]]]] = field(default_factory=dict)

    @property
    def wanted(self) -> bool:
        return bool(aggregate_steps(self.wf.spec))

    def add(self, index: int, inputs: dict[str, Any], steps: dict[str, StepResult]) -> None:
        views = {sid: r.template_view() for sid, r in steps.items()}
        self.rows[index] = (dict(inputs), views)

    def add_kept(
        self, index: int, inputs: dict[str, Any], steps: dict[str, dict[str, Any]]
    ) -> None:
        """A record that succeeded in an earlier invocation of the batch (a resume keeps it):
        its steps as the run store keeps them (each step's ``--json`` entry)."""
        views = {
            sid: {
                "output": step.get("output"),
                "usage": step.get("usage") or {},
                "finish_reason": step.get("finish_reason"),
                "skipped": step.get("status") == "skipped",
                "status": step.get("status"),
                "tool_calls": step.get("tool_calls"),
                "cost_usd": step.get("cost_usd"),
                "model": step.get("model"),
            }
            for sid, step in steps.items()
        }
        self.rows[index] = (dict(inputs), views)

    def scope(self) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """``inputs`` and ``steps`` as lists over the records (None where a step has no result)."""
        ordered = [self.rows[i] for i in sorted(self.rows)]
        later = set(aggregate_steps(self.wf.spec))
        inputs = {name: [row[0].get(name) for row in ordered] for name in self.wf.spec.inputs}
        steps: dict[str, dict[str, Any]] = {}
        for sid in self.wf.spec.steps:
            if sid in later:
                continue
            views = [row[1].get(sid) for row in ordered]
            keys = next((list(v) for v in views if v is not None), ["output", "skipped"])
            steps[sid] = {k: [v.get(k) if v else None for v in views] for k in keys}
        return inputs, steps


@dataclass
class Aggregated:
    steps: dict[str, StepResult] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> StepResult | None:
        return next((r for r in self.steps.values() if r.status == "failed"), None)


async def run_aggregates(
    wf: LoadedWorkflow, rows: AggregateRows, services: Services, run_id: str
) -> Aggregated:
    """Run the aggregate steps once over ``rows``; their results and the metrics logged."""
    from flowrun.engine.executor import Executor

    out = Aggregated()
    inputs, steps = rows.scope()
    executor = Executor(wf, inputs, services, run_id=run_id)
    for sid, view in steps.items():  # what the aggregate steps' templates see
        executor.set_view(sid, view)
    with collecting(out.metrics):
        for sid in aggregate_steps(wf.spec):
            result = await executor.run_step(sid)  # (which makes it visible to later steps)
            out.steps[sid] = result
            if result.status == "failed":
                break
    return out


async def aggregate_single(
    wf: LoadedWorkflow, inputs: dict[str, Any], result: RunResult, services: Services, db: Any
) -> None:
    """A single run's aggregate steps, over its one record: their results join ``result``'s
    steps (and the run store's), their metrics become ``result.metrics``."""
    rows = AggregateRows(wf)
    rows.add(0, inputs, result.steps)
    done = await run_aggregates(wf, rows, services, result.run_id)
    fold(result, done)
    for step in done.steps.values():
        if db is not None:
            db.step_finished(result.run_id, step)
    if db is not None and done.metrics:
        db.save_metrics(result.run_id, done.metrics)


def fold(result: RunResult, done: Aggregated) -> None:
    """Add the aggregate steps' results and metrics to a run's result."""
    result.steps.update(done.steps)
    result.metrics = done.metrics
    calls = [c for r in done.steps.values() for c in r.calls]
    for call in calls:
        result.cost.add(call)
    failed = done.failed
    if failed is not None:
        result.status = "failed"
        result.failed_step = failed.id
        result.error = f"step '{failed.id}' failed: {failed.error}"
