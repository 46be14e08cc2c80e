"""The streaming batch runner: one workflow over many records, concurrently, results in order.

How it works: records are read one at a time; at most ``concurrency`` run at once (each an
``Executor`` over the batch's shared ``Services``: one client, one price table, one budget);
results are handed out strictly in input order through a reorder buffer that holds at most
``window`` (4 x concurrency) records, so memory stays flat however long the input is. A
record that fails (bad line, bad input, a failed step) is a failed result; the others go on.

With a budget, a call refused only because other in-flight calls have reserved their worst
case waits for them to settle and is retried (its record's completed steps are kept); when
the budget is really spent, no new record starts and the batch reports it stopped.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from flowrun.batch.progress import Progress
from flowrun.batch.records import ColumnMapping, RecordError, SourceRecord
from flowrun.batch.summary import BatchResult, BatchSummary
from flowrun.engine.aggregate import AggregateRows, run_aggregates
from flowrun.engine.budget import BudgetGate
from flowrun.engine.executor import Executor
from flowrun.engine.services import Services
from flowrun.errors import BudgetExceeded, UsageError
from flowrun.format.loader import LoadedWorkflow
from flowrun.format.spec import aggregate_steps
from flowrun.results import CallRecord, CostReport, StepResult

DEFAULT_CONCURRENCY = 32
WINDOW_FACTOR = 4  # the reorder buffer holds at most this many x concurrency records
TICK_S = 0.2

CURRENT_RECORD: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "flowrun_batch_record", default=None
)


class BatchBudgetGate(BudgetGate):
    """A budget gate that tells the batch which record a refusal hit, and why.

    ``refused[index]`` is True when other calls' reservations caused the refusal (waiting
    for them may help), False when the money is really spent.
    """

    def __init__(self, limit: float, prices: Any, spent: float = 0.0) -> None:
        super().__init__(limit, prices, spent)
        self.refused: dict[int, bool] = {}
        self.changed: asyncio.Event | None = None

    def reserve(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().reserve(*args, **kwargs)
        except BudgetExceeded:
            index = CURRENT_RECORD.get()
            if index is not None:
                self.refused[index] = self.refused.get(index, False) or self.reserved > 1e-12
            raise

    def settle(self, *args: Any, **kwargs: Any) -> None:
        super().settle(*args, **kwargs)
        if self.changed is not None:
            self.changed.set()


class _StepSink:
    """The executor's recorder for one record: completed steps go to the batch store, a step
    that made a model call committed at once when ``commit_paid`` (live calls: its answer
    exists nowhere else)."""

    __slots__ = ("store", "batch_id", "index", "commit_paid")

    def __init__(self, store: Any, batch_id: str, index: int, commit_paid: bool) -> None:
        self.store, self.batch_id, self.index = store, batch_id, index
        self.commit_paid = commit_paid

    def step_finished(self, run_id: str, result: StepResult) -> None:
        paid = self.commit_paid and any(not c.cached for c in result.calls)
        self.store.add_step(self.batch_id, self.index, result, commit=paid)


class _ItemSink(_StepSink):
    """A live batch's recorder also keeps each finished foreach item, committed at once when
    it made a model call, and gives a resumed record its stored items back."""

    __slots__ = ()

    def item_finished(
        self, run_id: str, step_id: str, item_index: int, key: str, item: dict[str, Any]
    ) -> None:
        paid = any(not c.get("cached") for c in item.get("calls") or [])
        self.store.add_item(self.batch_id, self.index, step_id, item_index, key, item, commit=paid)

    def load_items(self, run_id: str, step_id: str) -> dict[int, tuple[str, dict[str, Any]]]:
        return self.store.load_items(self.batch_id, self.index, step_id)


class BatchRunner:
    """Runs ``wf`` over ``records`` and yields ``BatchResult`` in input order (``results()``).

    ``concurrency`` bounds the records in flight; ``window`` (default 4 x concurrency) bounds
    the records started but not yet handed out, i.e. the reorder buffer.
    """

    executor_class: type[Executor] = Executor
    #: a step that made a model call is committed to the batch store as it completes
    commit_paid_steps = True

    def __init__(
        self,
        wf: LoadedWorkflow,
        records: Iterable[SourceRecord],
        mapping: ColumnMapping,
        services: Services,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        window: int | None = None,
        store: Any = None,
        batch_id: str | None = None,
        reuse: Callable[[int], dict[str, StepResult]] | None = None,
        summary: BatchSummary | None = None,
        progress: Progress | None = None,
        check_first: bool = True,
    ) -> None:
        if concurrency < 1:
            raise UsageError("concurrency must be at least 1")
        self.wf = wf
        self.records = records
        self.mapping = mapping
        self.services = services
        self.concurrency = concurrency
        self.window = max(window or concurrency * WINDOW_FACTOR, concurrency)
        self.store = store
        self.batch_id = batch_id or "batch"
        self.reuse = reuse
        self.summary = summary or BatchSummary(batch_id=batch_id)
        self.progress = progress or Progress()
        self.check_first = check_first
        self.gate = services.budget if isinstance(services.budget, BatchBudgetGate) else None
        self._budget_waiters = 0
        self._in_flight = 0
        # what aggregate steps read, kept from each succeeded record (only when there are any)
        self.rows = AggregateRows(wf) if aggregate_steps(wf.spec) else None

    # --- one record ---------------------------------------------------------------------
    def _prepare(self, rec: SourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.mapping.inputs_for(rec)

    def _recorder(self, index: int) -> _StepSink | None:
        """Where record ``index``'s executor hands its completed steps (and foreach items):
        the batch store, when there is one."""
        if self.store is None:
            return None
        return _ItemSink(self.store, self.batch_id, index, self.commit_paid_steps)

    async def _run_record(self, rec: SourceRecord) -> BatchResult:
        started = time.perf_counter()
        CURRENT_RECORD.set(rec.index)
        try:
            inputs, extra = self._prepare(rec)
        except RecordError as exc:
            return BatchResult(rec.index, "failed", error=str(exc), extra=exc.extra, line=rec.line)
        try:
            return await self._execute(rec, inputs, extra, started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: fail this record, not the batch
            return BatchResult(
                rec.index,
                "failed",
                error=f"internal error: {type(exc).__name__}: {exc}",
                extra=extra,
                line=rec.line,
            )

    async def _execute(
        self, rec: SourceRecord, inputs: dict[str, Any], extra: dict[str, Any], started: float
    ) -> BatchResult:
        completed = self.reuse(rec.index) if self.reuse is not None else None
        reused = completed or {}  # (the steps given: its keys, read once the run ends)
        wasted: list[CallRecord] = []
        recorder = self._recorder(rec.index)
        retrying = False  # while a refused record retries, no new record starts
        try:
            while True:
                # (by position: a class called with keywords builds a dict of them)
                executor = self.executor_class(
                    self.wf,
                    inputs,
                    self.services,
                    f"{self.batch_id}:{rec.index}",
                    recorder,
                    completed,
                )
                run = await executor.run()
                if retrying:
                    retrying = False
                    self._budget_waiters -= 1
                if self.gate is None or rec.index not in self.gate.refused:
                    break
                if run.ok:
                    self.gate.refused.pop(rec.index, None)
                    break
                stopped_before = self.summary.stopped is not None
                if not await self._budget_retry(rec.index):
                    if (
                        stopped_before
                        and not wasted
                        and not any(r.calls for r in run.steps.values())
                    ):  # refused only because the batch had stopped: it never ran
                        return BatchResult(rec.index, "not_run", extra=extra, line=rec.line)
                    break
                retrying = True
                kept = {
                    sid: r for sid, r in run.steps.items() if r.status in ("succeeded", "skipped")
                }
                wasted += [c for sid, r in run.steps.items() if sid not in kept for c in r.calls]
                completed = kept
        finally:
            if retrying:
                self._budget_waiters -= 1
        if self.rows is not None and run.ok:
            self.rows.add(rec.index, inputs, run.steps)
        new_calls = [c for sid, r in run.steps.items() if sid not in reused for c in r.calls]
        # the run's report is over the calls of its steps already
        cost = run.cost
        if wasted:
            cost = CostReport.from_calls([c for r in run.steps.values() for c in r.calls] + wasted)
        # (its fields by position, in their order: keywords would be matched one by one)
        return BatchResult(
            rec.index,
            run.status,
            run.outputs,
            run.error,
            run.failed_step,
            cost,
            extra,
            rec.line,
            time.perf_counter() - started,
            run.steps,
            new_calls + wasted,
        )

    async def _budget_retry(self, index: int) -> bool:
        """After a budget refusal: wait for the calls in flight to settle; whether to retry.

        A True answer leaves ``_budget_waiters`` raised (new records stay paused) until the
        caller's retry is over, so a record admitted meanwhile cannot take the room it waited for.
        """
        gate = self.gate
        assert gate is not None
        if not gate.refused.pop(index):
            self._stop_for_budget(gate)
            return False
        if gate.changed is None:
            gate.changed = asyncio.Event()
        self._budget_waiters += 1
        try:
            while gate.reserved > 1e-12:
                gate.changed.clear()
                await gate.changed.wait()
        except BaseException:
            self._budget_waiters -= 1
            raise
        if self.summary.stopped is not None:
            self._budget_waiters -= 1
            return False
        return True

    def _stop_for_budget(self, gate: BudgetGate) -> None:
        if self.summary.stopped is None:
            self.summary.stopped = (
                f"the budget of ${gate.limit:g} is spent (${gate.spent:.6f}); records not yet "
                "started were not run"
            )

    # --- the stream ---------------------------------------------------------------------
    async def results(self) -> AsyncIterator[BatchResult]:
        """Run every record; yield results in input order as soon as each is next in line."""
        order: deque[int] = deque()
        finished: dict[int, BatchResult] = {}
        tasks: dict[int, asyncio.Task[BatchResult]] = {}
        wake = asyncio.Event()
        summary, progress = self.summary, self.progress

        def on_done(index: int, task: asyncio.Task[BatchResult]) -> None:
            tasks.pop(index, None)
            self._in_flight -= 1
            if task.cancelled():
                return
            result = task.result()
            finished[index] = result
            summary.record(result)
            progress.update()
            wake.set()

        def ready() -> list[BatchResult]:
            out = []
            while order and order[0] in finished:
                result = finished.pop(order.popleft())
                if result.status != "not_run":  # no line: a resume runs it
                    out.append(result)
            return out

        def blocked() -> bool:
            return (
                self._in_flight >= self.concurrency
                or len(order) >= self.window
                or self._budget_waiters > 0
            )

        ticker = asyncio.ensure_future(self._tick())
        first = self.check_first
        records = iter(self.records)
        try:
            for rec in records:
                if first:
                    first = False
                    if rec.index == 0:
                        self._check_first(rec)
                while True:
                    batch = ready()
                    if batch:
                        for result in batch:
                            yield result
                            self.forget(result)
                        continue
                    if not blocked():
                        break
                    wake.clear()
                    await wake.wait()
                if summary.stopped:
                    summary.not_run += 1 + sum(1 for _ in records)
                    break
                order.append(rec.index)
                task = asyncio.ensure_future(self._run_record(rec))
                self._in_flight += 1
                tasks[rec.index] = task
                task.add_done_callback(lambda t, i=rec.index: on_done(i, t))
            while order:
                batch = ready()
                if not batch and order:  # (ready() may drain not-run records only)
                    wake.clear()
                    await wake.wait()
                for result in batch:
                    yield result
                    self.forget(result)
            if self.rows is not None and not summary.stopped:
                await self._aggregate()
        finally:
            ticker.cancel()
            for task in list(tasks.values()):
                task.cancel()
            await asyncio.gather(*tasks.values(), ticker, return_exceptions=True)
            summary.duration_s = time.perf_counter() - summary.started
            if self.store is not None:
                self.store.flush()

    async def _aggregate(self) -> None:
        """Run the aggregate steps once over the succeeded records; metrics into the summary."""
        assert self.rows is not None
        done = await run_aggregates(self.wf, self.rows, self.services, self.batch_id)
        summary = self.summary
        summary.metrics = done.metrics
        summary.metrics_records = len(self.rows.rows)
        for step in done.steps.values():
            for call in step.calls:
                summary.cost.add(call)
        failed = done.failed
        if failed is not None:
            summary.aggregate_error = f"step '{failed.id}' failed: {failed.error}"

    def _check_first(self, rec: SourceRecord) -> None:
        """Mistakes the first record shows (bad line, missing column) stop the batch: exit 2.

        Only for record 0 of a fresh run: a resume (``check_first=False``) runs the rest.
        """
        try:
            self._prepare(rec)
        except RecordError as exc:
            raise UsageError(
                str(exc),
                hint="the first record is unusable, so nothing was run; "
                "check the file and the column mapping (later bad records fail alone)",
            ) from None

    def forget(self, result: BatchResult) -> None:
        """The caller has saved ``result``: a succeeded record's stored steps can go."""
        if self.store is not None and result.ok:
            self.store.forget(self.batch_id, result.index)

    async def _tick(self) -> None:
        last_progress = time.perf_counter()
        while True:
            await asyncio.sleep(TICK_S)
            if self.store is not None:
                self.store.flush()
            now = time.perf_counter()
            if now - last_progress >= 1.0:
                last_progress = now
                self.progress.tick()
