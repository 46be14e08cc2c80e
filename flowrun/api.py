"""The Python API: run a loaded workflow (sync or async). The CLI calls exactly these.

May import: ``engine``, ``format``, ``provider``, ``store``, ``errors``, ``results``, ``redaction``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowrun.engine.executor import Executor
from flowrun.engine.run_options import RunOptions, check_max_cost, make_services
from flowrun.engine.services import Services
from flowrun.errors import UsageError
from flowrun.format.inputs import resolve_inputs
from flowrun.format.loader import LoadedWorkflow, load_workflow
from flowrun.format.spec import aggregate_steps
from flowrun.provider.interface import ModelClient
from flowrun.provider.pricing import PriceTable
from flowrun.results import RunResult

__all__ = [
    "RunOptions",
    "aresume_run",
    "arun_workflow",
    "check_max_cost",
    "make_services",
    "new_run_id",
    "resume_run",
    "run_sync",
    "run_workflow",
]

OnText = Callable[[str, str], None]
OnStep = Callable[[str, str, Any], None]


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _as_workflow(workflow: LoadedWorkflow | str | Path) -> LoadedWorkflow:
    return workflow if isinstance(workflow, LoadedWorkflow) else load_workflow(workflow)


StoreOption = Any  # RunStore, True (the default store under FLOWRUN_HOME) or False/None (no store)


def _open_store(store: StoreOption) -> tuple[Any, bool]:
    """The run store to write to (or None), and whether this call opened it (so must close it)."""
    if store is True:
        from flowrun.store.runs import RunStore

        return RunStore(), True
    return store or None, False


async def arun_workflow(
    workflow: LoadedWorkflow | str | Path,
    inputs: dict[str, Any] | None = None,
    *,
    store: StoreOption = True,
    services: Services | None = None,
    run_id: str | None = None,
    client: ModelClient | None = None,
    prices: PriceTable | str | Path | None = None,
    max_cost: float | None = None,
    cache: bool = False,
    transcripts: bool = True,
    on_text: OnText | None = None,
    on_step: OnStep | None = None,
) -> RunResult:
    """Run a workflow on the current event loop and return its ``RunResult``.

    Every step result is written to the run store (``store=True``: the one under
    ``FLOWRUN_HOME``; pass a ``RunStore`` or ``False``) the moment it completes. The other
    keyword arguments are ``flowrun.api.RunOptions``' (``docs/python-api.md``); ``services``
    (built by ``make_services``) replaces them. Invalid inputs raise ``UsageError``.
    """
    wf = _as_workflow(workflow)
    values = resolve_inputs(wf.spec, inputs)
    options = RunOptions(
        client=client,
        prices=prices,
        max_cost=max_cost,
        cache=cache,
        transcripts=transcripts,
        on_text=on_text,
        on_step=on_step,
    )
    recorded = options.recorded()
    if services is None:  # bad prices or no API key: fail before a run is recorded
        options = options.ready(wf)
    db, owned = _open_store(store)
    try:
        run_id = run_id or new_run_id()
        if db is not None:
            db.start_run(run_id, wf, values, recorded)
        own = services is None
        if services is None:
            services = make_services(wf, options, store=db)
        else:  # the caller's services, with this run's store for threads (theirs stay as they are)
            services = dataclasses.replace(services, threads=db)
        return await _execute(wf, values, db, run_id, services, own=own)
    finally:
        if owned:
            db.close()


async def _execute(
    wf: LoadedWorkflow,
    values: dict[str, Any],
    db: Any,
    run_id: str,
    services: Services,
    *,
    own: bool,
    completed: dict[str, Any] | None = None,
) -> RunResult:
    """Run ``wf`` with ``services`` (closed after when ``own``); ``completed``: a resume's kept
    steps."""
    executor = Executor(wf, values, services, run_id=run_id, recorder=db, completed=completed)
    try:
        result = await executor.run()
        if result.ok and aggregate_steps(wf.spec):  # a single run: the aggregate of one record
            from flowrun.engine.aggregate import aggregate_single

            await aggregate_single(wf, values, result, services, db)
    except BaseException as exc:
        if db is not None:
            _mark_stopped(db, run_id, exc)
        raise
    finally:
        if own:
            await services.aclose()
    if db is not None:
        _record_finish(db, result)
    return result


def _record_finish(db: Any, result: RunResult) -> None:
    """Mark the run finished in the store; a store that stays locked only costs a warning."""
    from flowrun.store.runs import StoreError

    try:
        db.finish_run(result)
    except StoreError as exc:
        result.warnings.append(f"the run could not be marked finished in the run store: {exc}")


def _mark_stopped(db: Any, run_id: str, exc: BaseException) -> None:
    """Record why a run stopped early: a signal (resumable), or an unexpected error."""
    import contextlib

    with contextlib.suppress(Exception):  # the store itself may be what failed
        if isinstance(exc, (asyncio.CancelledError, KeyboardInterrupt)):
            db.mark_status(run_id, "interrupted", "interrupted by a signal")
        else:
            db.mark_status(run_id, "failed", f"{type(exc).__name__}: {exc}")


async def aresume_run(
    run_id: str,
    *,
    store: StoreOption = True,
    force: bool = False,
    client: ModelClient | None = None,
    prices: PriceTable | str | Path | None = None,
    max_cost: float | None = None,
    cache: bool = False,
    transcripts: bool | None = None,
    on_text: OnText | None = None,
    on_step: OnStep | None = None,
) -> RunResult:
    """Finish a failed or interrupted run: completed steps are loaded, the rest are run.

    The workflow file is re-read; if it changed in a way that affects completed steps,
    resuming is refused (``force=True`` resumes anyway). ``max_cost``, ``prices`` and
    ``transcripts`` default to the run's own; the budget counts what the run already spent.
    """
    from flowrun.engine.resume import plan_resume

    db, owned = _open_store(store)
    if db is None:
        raise UsageError("resume needs the run store")
    try:
        plan = plan_resume(db, run_id, force=force)
        given = {"max_cost": max_cost, "prices": prices, "transcripts": transcripts}
        stored = {**plan.options, **{k: v for k, v in given.items() if v is not None}}
        options = RunOptions(client, cache=cache, on_text=on_text, on_step=on_step).over(stored)
        options = options.ready(plan.workflow)
        # what the run paid so far, kept steps, stored foreach items and failed attempts alike
        spent = db.mark_resumed(plan.run_id, rerun=plan.rerun)
        services = make_services(plan.workflow, options, store=db, spent=spent)
        result = await _execute(
            plan.workflow,
            plan.inputs,
            db,
            plan.run_id,
            services,
            own=True,
            completed=plan.completed,
        )
        result.kept_steps = [sid for sid in result.steps if sid in plan.completed]
        result.earlier_usd = db.get_run(plan.run_id).earlier_cost_usd
        return result
    finally:
        if owned:
            db.close()


def resume_run(run_id: str, **options: Any) -> RunResult:
    """Synchronous ``aresume_run``."""
    return run_sync(aresume_run(run_id, **options))


def run_workflow(
    workflow: LoadedWorkflow | str | Path, inputs: dict[str, Any] | None = None, **options: Any
) -> RunResult:
    """Run a workflow and wait for it; works from plain scripts and from inside an event loop."""
    return run_sync(arun_workflow(workflow, inputs, **options))


def run_sync(coro: Any) -> Any:
    """Run a coroutine to completion, in a worker thread if an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()
