"""Batch runs from Python: ``run_batch`` / ``arun_batch``, one workflow over many records.

```python
from flowrun import load_workflow, run_batch
for result in run_batch(load_workflow("triage.yaml"), "tickets.jsonl", concurrency=16):
    print(result.index, result.status, result.outputs)
```

The runner itself is ``flowrun.batch.runner.BatchRunner`` (streaming, bounded memory,
results in input order); results and totals are in ``flowrun.batch.summary``; a batch from
a file to an output file, stored and resumable, is ``flowrun.batch.job``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from flowrun.batch.modes import LIVE, BatchMode, batch_mode
from flowrun.batch.records import ColumnMapping, RecordFile, SourceRecord, records_from
from flowrun.batch.runner import (
    CURRENT_RECORD,
    DEFAULT_CONCURRENCY,
    BatchRunner,
)
from flowrun.batch.summary import BatchResult, BatchSummary
from flowrun.engine.run_options import RunOptions
from flowrun.engine.services import Services
from flowrun.format.loader import LoadedWorkflow, load_workflow

__all__ = [
    "CURRENT_RECORD",
    "DEFAULT_CONCURRENCY",
    "BatchResult",
    "BatchRunner",
    "BatchSummary",
    "arun_batch",
    "make_batch_services",
    "run_batch",
]


def make_batch_services(
    wf: LoadedWorkflow,
    options: RunOptions | None = None,
    *,
    mode: BatchMode = LIVE,
    rpm: int | None = None,
    tpm: int | None = None,
    spent: float = 0.0,
) -> Services:
    """The services a whole batch shares: one client (rate limited), prices, budget (the
    mode's gate, starting from ``spent``: what an earlier invocation of the batch spent), the
    run store when a step caches or keeps a thread."""
    from flowrun.engine.run_options import make_services

    options = options or RunOptions()
    store = None
    if options.cache or _needs_run_store(wf):
        from flowrun.store.runs import RunStore

        store = RunStore()
    wrap = None
    if rpm or tpm:
        from flowrun.provider.ratelimit import RateLimitedClient, RateLimiter

        def wrap(client: Any) -> Any:
            return RateLimitedClient(client, RateLimiter(rpm, tpm))

    return make_services(wf, options, store=store, spent=spent, gate=mode.budget_gate, wrap=wrap)


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
    cache: bool = False,
    via: str | BatchMode = "live",
    summary: BatchSummary | None = None,
) -> AsyncIterator[BatchResult]:
    """Run ``workflow`` once per record; an async iterator of ``BatchResult`` in input order.

    ``records`` is a JSONL/CSV path or an iterable of mappings. ``inputs`` are given to every
    record; ``mapping`` takes an input from another column (``{"question": "q"}`` or
    ``{"question": "${data.q}"}``); other columns are carried as ``result.extra``.
    ``max_cost`` caps the whole batch. Pass a ``BatchSummary`` to read totals afterwards.
    ``via="batch-api"`` runs it through the OpenAI Batch API in waves (``docs/batch-api.md``);
    ``concurrency`` then caps the records in flight (default: all of them).
    """
    mode = batch_mode(via)
    wf = workflow if isinstance(workflow, LoadedWorkflow) else load_workflow(workflow)
    source, columns, _ = _source(wf, records, mapping, inputs)
    options = RunOptions(client=client, prices=prices, max_cost=max_cost, cache=cache).ready(wf)
    services = make_batch_services(wf, options, mode=mode, rpm=rpm, tpm=tpm)
    runner = mode.runner(wf, source, columns, services, concurrency=concurrency, summary=summary)
    try:
        async for result in runner.results():
            yield result
    finally:
        await services.aclose()
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
