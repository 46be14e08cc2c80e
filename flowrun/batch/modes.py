"""How a batch's model calls are made, chosen once at the start (prefect's task-runner shape).

``LIVE``: each record's calls go out as the record needs them (``--rpm``/``--tpm`` apply).
``BATCH_API``: calls are parked and sent in waves through the OpenAI Batch API, at half price
(``batch_api/``). ``batch_mode("live" | "batch-api")`` turns the ``via`` a user gives (the
``--via`` option, ``run_batch(via=...)``, a stored batch's options) into one of them; from
there on the code asks the mode, never the string.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowrun.batch.runner import DEFAULT_CONCURRENCY, BatchBudgetGate, BatchRunner
from flowrun.engine.budget import BudgetGate
from flowrun.errors import UsageError

#: Records in flight with the Batch API: up to 100,000 at once. A record waiting for a batch is
#: suspended (no task or coroutine: its requests and completed steps are in the run store), so
#: the first round holds the first requests of every record up to this bound (see
#: docs/batch-api.md and benchmarks/batch_api_scale.py). A suspended record still keeps its
#: parsed input line and its place in the output order in memory (a few hundred bytes).
BATCH_API_WINDOW = 100_000


@dataclass(frozen=True)
class BatchMode:
    """Live calls; the base of the other modes."""

    name: str = "live"  # what the batch row keeps (``options.via``) and the history shows
    default_concurrency: int = DEFAULT_CONCURRENCY
    rate_limited: bool = True  # whether --rpm / --tpm apply

    @property
    def batch_api(self) -> bool:
        return False

    @property
    def budget_gate(self) -> type[BudgetGate]:
        """The budget gate's class: one that tells the batch which record a refusal hit."""
        return BatchBudgetGate

    def runner(
        self,
        wf: Any,
        records: Any,
        mapping: Any,
        services: Any,
        *,
        concurrency: int | None = None,
        **options: Any,
    ) -> BatchRunner:
        """The runner that keeps ``concurrency`` records in flight (``options``: its class's)."""
        return self.runner_class()(
            wf,
            records,
            mapping,
            services,
            concurrency=concurrency or self.default_concurrency,
            **self.runner_options(options),
        )

    def runner_class(self) -> type[BatchRunner]:
        return BatchRunner

    def runner_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """The runner's keyword arguments, completed for this mode."""
        return options


@dataclass(frozen=True)
class BatchAPIMode(BatchMode):
    """Requests parked and sent in waves through the OpenAI Batch API."""

    name: str = "batch-api"
    default_concurrency: int = BATCH_API_WINDOW
    rate_limited: bool = False

    @property
    def batch_api(self) -> bool:
        return True

    @property
    def budget_gate(self) -> type[BudgetGate]:
        """Books each parked request at Batch API prices; a wave is checked whole."""
        from flowrun.batch.batch_api.settings import WaveBudget

        return WaveBudget

    def runner_class(self) -> type[BatchRunner]:
        from flowrun.batch.batch_api.runner import WaveBatchRunner

        return WaveBatchRunner

    def runner_options(self, options: dict[str, Any]) -> dict[str, Any]:
        """``state``: the Batch API state (default: the run store's); a batch of the Python
        API gets a new id."""
        from flowrun.batch.summary import BatchSummary, new_batch_id
        from flowrun.store.batch_api_state import BatchState

        options = dict(options)
        if options.get("batch_id") is None:
            summary = options.get("summary") or BatchSummary()
            summary.batch_id = summary.batch_id or new_batch_id()
            options.update(summary=summary, batch_id=summary.batch_id)
        if options.get("state") is None:
            options["state"] = BatchState()
        return options


LIVE = BatchMode()
BATCH_API = BatchAPIMode()
MODES = {mode.name: mode for mode in (LIVE, BATCH_API)}


def batch_mode(via: str | BatchMode | None) -> BatchMode:
    """The mode named by ``via`` (``"live"``, ``"batch-api"``; None is live)."""
    if isinstance(via, BatchMode):
        return via
    mode = MODES.get(via or "live")
    if mode is None:
        raise UsageError(f"unknown via {via!r} (expected live or batch-api)")
    return mode
