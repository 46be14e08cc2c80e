"""The streaming batch runner: one workflow over many records, concurrently, results in order.

```python
from flowrun import load_workflow, run_batch
for result in run_batch(load_workflow("triage.yaml"), "tickets.jsonl", concurrency=16):
    print(result.index, result.status, result.outputs)
```

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
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import BudgetGate
from .errors import BudgetExceeded, UsageError
from .executor import Executor
from .loader import LoadedWorkflow, load_workflow
from .progress import Progress
from .records import ColumnMapping, RecordError, RecordFile, SourceRecord, records_from
from .results import CallRecord, CostReport, StepResult
from .runtime import Services

DEFAULT_CONCURRENCY = 32
WINDOW_FACTOR = 4  # the reorder buffer holds at most this many x concurrency records
TICK_S = 0.2

CURRENT_RECORD: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "flowrun_batch_record", default=None
)


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

    @property
    def cost_usd(self) -> float:
        return self.cost.total_usd

    @property
    def status(self) -> str:
        if self.interrupted:
            return "interrupted"
        if self.failed or self.stopped:
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
        return data


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
    """The executor's recorder for one record: completed steps go to the batch store."""

    __slots__ = ("store", "batch_id", "index")

    def __init__(self, store: Any, batch_id: str, index: int) -> None:
        self.store, self.batch_id, self.index = store, batch_id, index

    def step_finished(self, run_id: str, result: StepResult) -> None:
        self.store.add_step(self.batch_id, self.index, result)


class BatchRunner:
    """Runs ``wf`` over ``records`` and yields ``BatchResult`` in input order (``results()``).

    ``concurrency`` bounds the records in flight; ``window`` (default 4 x concurrency) bounds
    the records started but not yet handed out, i.e. the reorder buffer.
    """

    executor_class: type[Executor] = Executor

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

    # --- one record ---------------------------------------------------------------------
    def _prepare(self, rec: SourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.mapping.inputs_for(rec)

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
        reused = set(completed or ())
        wasted: list[CallRecord] = []
        recorder = (
            _StepSink(self.store, self.batch_id, rec.index) if self.store is not None else None
        )
        retrying = False  # while a refused record retries, no new record starts
        try:
            while True:
                executor = self.executor_class(
                    self.wf,
                    inputs,
                    self.services,
                    run_id=f"{self.batch_id}:{rec.index}",
                    recorder=recorder,
                    completed=completed,
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
        calls = [c for r in run.steps.values() for c in r.calls]
        new_calls = [c for sid, r in run.steps.items() if sid not in reused for c in r.calls]
        return BatchResult(
            index=rec.index,
            status=run.status,
            outputs=run.outputs,
            error=run.error,
            failed_step=run.failed_step,
            cost=CostReport.from_calls(calls + wasted),
            extra=extra,
            line=rec.line,
            duration_s=time.perf_counter() - started,
            steps=run.steps,
            new_calls=new_calls + wasted,
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
        finally:
            ticker.cancel()
            for task in list(tasks.values()):
                task.cancel()
            await asyncio.gather(*tasks.values(), ticker, return_exceptions=True)
            summary.duration_s = time.perf_counter() - summary.started
            if self.store is not None:
                self.store.flush()

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
                "check the file and --map (later bad records fail alone)",
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


# --- the Python API -----------------------------------------------------------------------


def make_batch_services(
    wf: LoadedWorkflow,
    *,
    client: Any = None,
    prices: Any = None,
    max_cost: float | None = None,
    cache: Any = None,
    rpm: int | None = None,
    tpm: int | None = None,
) -> Services:
    """The services a whole batch shares: one client (rate limited), prices, budget, cache."""
    from .api import make_services
    from .client import ModelClient

    cache_all = False
    store = None
    if cache is True or _needs_run_store(wf):
        from .store import RunStore

        store = RunStore()
        cache_all = cache is True
        cache = store
    client = client or ModelClient()
    if rpm or tpm:
        from .ratelimit import RateLimitedClient, RateLimiter

        client = RateLimitedClient(client, RateLimiter(rpm, tpm))
    services = make_services(
        wf, client=client, prices=prices, max_cost=max_cost, cache=cache or None
    )
    services.cache_all = cache_all
    services.threads = store
    if services.budget is not None:
        services.budget = BatchBudgetGate(
            services.budget.limit, services.budget.prices, services.budget.spent
        )
    return services


def _needs_run_store(wf: LoadedWorkflow) -> bool:
    """Whether a step uses the response cache or a conversation thread (both live there)."""
    if wf.spec.defaults.cache:
        return True
    return any(
        getattr(step, "cache", None) or getattr(step, "thread", None)
        for step in wf.spec.steps.values()
    )


def _source(
    wf: LoadedWorkflow,
    records: str | Path | Iterable[Mapping[str, Any]],
    mapping: Any,
    inputs: Mapping[str, Any] | None,
) -> tuple[Iterable[SourceRecord], ColumnMapping, RecordFile | None]:
    if isinstance(records, (str, Path)):
        file = RecordFile(records)
        columns = ColumnMapping(wf.spec, mapping, inputs, file=file.name)
        columns.check_file(file)
        return file, columns, file
    return records_from(records), ColumnMapping(wf.spec, mapping, inputs), None


async def arun_batch(
    workflow: LoadedWorkflow | str | Path,
    records: str | Path | Iterable[Mapping[str, Any]],
    *,
    inputs: Mapping[str, Any] | None = None,
    mapping: Mapping[str, str] | None = None,
    concurrency: int | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    max_cost: float | None = None,
    prices: Any = None,
    client: Any = None,
    cache: Any = None,
    via: str = "live",
    summary: BatchSummary | None = None,
) -> AsyncIterator[BatchResult]:
    """Run ``workflow`` once per record; an async iterator of ``BatchResult`` in input order.

    ``records`` is a JSONL/CSV path or an iterable of mappings. ``inputs`` are given to every
    record; ``mapping`` takes an input from another column (``{"question": "q"}`` or
    ``{"question": "${data.q}"}``); other columns are carried as ``result.extra``.
    ``max_cost`` caps the whole batch. Pass a ``BatchSummary`` to read totals afterwards.
    ``via="batch-api"`` runs it through the OpenAI Batch API in waves (``docs/batch-api.md``);
    ``concurrency`` is then the window of records in flight (default 10,000).
    """
    _check_via(via)
    wf = workflow if isinstance(workflow, LoadedWorkflow) else load_workflow(workflow)
    source, columns, _ = _source(wf, records, mapping, inputs)
    services = make_batch_services(
        wf, client=client, prices=prices, max_cost=max_cost, cache=cache, rpm=rpm, tpm=tpm
    )
    if via == "batch-api":
        from .batch_api.runner import wave_runner

        runner: BatchRunner = wave_runner(
            wf, source, columns, services, concurrency=concurrency, summary=summary
        )
    else:
        runner = BatchRunner(
            wf,
            source,
            columns,
            services,
            concurrency=concurrency or DEFAULT_CONCURRENCY,
            summary=summary,
        )
    try:
        async for result in runner.results():
            yield result
    finally:
        await services.client.aclose()
        if services.threads is not None:
            services.threads.close()


def run_batch(
    workflow: LoadedWorkflow | str | Path,
    records: str | Path | Iterable[Mapping[str, Any]],
    **options: Any,
) -> Iterator[BatchResult]:
    """Synchronous ``arun_batch``: a generator of ``BatchResult`` in input order.

    Works from plain scripts and from inside a running event loop (then in a worker thread).
    """
    agen = arun_batch(workflow, records, **options)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        yield from _drive(agen, None)
        return
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        yield from _drive(agen, pool)


def _drive(agen: Any, pool: Any) -> Iterator[Any]:
    """Step an async generator from synchronous code on a private event loop."""
    loop = asyncio.new_event_loop()

    def step(coro: Any) -> Any:
        if pool is None:
            return loop.run_until_complete(coro)
        return pool.submit(loop.run_until_complete, coro).result()

    try:
        while True:
            try:
                item = step(agen.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        try:
            step(agen.aclose())
            step(loop.shutdown_asyncgens())
            step(loop.shutdown_default_executor())
        finally:
            loop.close()


def _check_via(via: str) -> None:
    if via not in ("live", "batch-api"):
        raise UsageError(f"unknown --via {via!r} (expected live or batch-api)")
