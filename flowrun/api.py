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

from flowrun.engine.budget import BudgetGate
from flowrun.engine.executor import Executor
from flowrun.engine.services import ResponseCache, Services
from flowrun.engine.tools import Toolbox
from flowrun.errors import UsageError, WorkflowInvalid
from flowrun.format.inputs import resolve_inputs
from flowrun.format.loader import LoadedWorkflow, load_workflow
from flowrun.format.spec import aggregate_steps
from flowrun.provider.interface import ModelClient
from flowrun.provider.pricing import PriceTable, load_price_table
from flowrun.results import RunResult


def new_run_id() -> str:
    """A sortable, unique run id: UTC timestamp plus random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


def _as_workflow(workflow: LoadedWorkflow | str | Path) -> LoadedWorkflow:
    return workflow if isinstance(workflow, LoadedWorkflow) else load_workflow(workflow)


def make_services(
    wf: LoadedWorkflow,
    *,
    client: ModelClient | None = None,
    prices: PriceTable | str | Path | None = None,
    max_cost: float | None = None,
    cache: ResponseCache | None = None,
    cache_all: bool = False,
    on_text: Callable[[str, str], None] | None = None,
    transcripts: bool = True,
    threads: Any = None,
    gate: type[BudgetGate] = BudgetGate,
    on_step: Callable[[str, str, Any], None] | None = None,
    use_servers: bool | None = None,
) -> Services:
    """The services one run (or one batch) shares, complete: nothing is set on them after.

    ``threads`` is the run store that keeps conversation threads (None: the run's own store,
    set by the executor); ``gate`` the budget gate's class (a batch's tells records apart).
    Steps with ``server:`` call their server's client; a ``client`` given by the caller (e.g.
    ``--mock``) serves every step instead (``use_servers=True``: only the steps without a
    server). Each server's prices apply either way.
    """
    from flowrun.engine.servers import price_tables, server_clients

    table = prices if isinstance(prices, PriceTable) else load_price_table(prices)
    limit = _check_priced(wf, table, max_cost)
    return Services(
        client=client or _openai_client(),
        servers=server_clients(wf) if (use_servers is None and client is None) or use_servers else None,
        server_prices=price_tables(wf, table),
        prices=table,
        budget=gate(limit, table) if limit is not None else None,
        cache=cache,
        cache_all=cache_all,
        toolbox=Toolbox.from_workflow(wf),
        on_text=on_text,
        transcripts=transcripts,
        threads=threads,
        on_step=on_step,
    )


def _openai_client() -> ModelClient:
    from flowrun.provider.client import OpenAIClient

    return OpenAIClient()


def check_max_cost(max_cost: Any) -> None:
    """A budget is a positive, finite number of dollars: NaN would compare false with every
    cost and so turn the budget off; infinity and negatives are no budget either."""
    import math

    if (
        isinstance(max_cost, bool)
        or not isinstance(max_cost, (int, float))
        or not math.isfinite(max_cost)
        or max_cost <= 0
    ):
        raise UsageError(
            f"max_cost={max_cost!r} is not a budget: give a positive, finite number of dollars"
        )


def _check_priced(wf: LoadedWorkflow, prices: PriceTable, max_cost: float | None) -> float | None:
    """The run's budget (``max_cost``, else ``budget.max_cost_usd``), or None.

    A budget needs every model priced: otherwise ``WorkflowInvalid`` at FILE:LINE of the model.
    """
    from flowrun.format.budget_checks import budget_problems

    if max_cost is not None:
        check_max_cost(max_cost)
        limit, source = max_cost, f"max_cost={max_cost:g}"
    elif wf.spec.budget is not None:
        limit, source = wf.spec.budget.max_cost_usd, "budget.max_cost_usd"
    else:
        return None
    problems = budget_problems(wf, prices, source)
    if problems:
        raise WorkflowInvalid(problems)
    return limit


def _checked_prices(wf: LoadedWorkflow, options: dict[str, Any]) -> PriceTable:
    """The run's price table; raises ``UsageError`` if it is unreadable or a budget cannot be kept."""
    prices = options.get("prices")
    table = prices if isinstance(prices, PriceTable) else load_price_table(prices)
    _check_priced(wf, table, options.get("max_cost"))
    return table


def _check_api_key(wf: LoadedWorkflow, client: ModelClient | None) -> None:
    """A workflow with model steps needs OPENAI_API_KEY (unless the caller brings a client);
    each named server a step uses needs its own key variable (``WorkflowInvalid`` at the
    ``api_key_env`` line)."""
    import os

    from flowrun.format.server_checks import key_problems, step_server

    if client is not None:
        return
    servers = {step_server(wf, sid) for sid, s in wf.spec.steps.items() if s.type != "tool"}
    problems = [
        p for name in sorted(n for n in servers if n) for p in key_problems(wf.servers[name])
    ]
    if problems:
        raise WorkflowInvalid(problems)
    if None not in servers or os.environ.get("OPENAI_API_KEY"):
        return
    if any(step.type != "tool" for step in wf.spec.steps.values()):
        raise UsageError(
            "OPENAI_API_KEY is not set",
            hint="export it (for an OpenAI-compatible server, set OPENAI_BASE_URL and any key), "
            "or try the workflow offline with --mock",
        )


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
    **service_options: Any,
) -> RunResult:
    """Run a workflow on the current event loop and return its ``RunResult``.

    Every step result is written to the run store (``store=True``: the one under
    ``FLOWRUN_HOME``; pass a ``RunStore`` or ``False``) the moment it completes.
    ``service_options`` (``client``, ``prices``, ``max_cost``, ``cache``, ``on_text``,
    ``transcripts``: False stores no transcripts) build the
    run's services when ``services`` is not given. Invalid inputs raise ``UsageError``.
    """
    wf = _as_workflow(workflow)
    values = resolve_inputs(wf.spec, inputs)
    recorded = _recorded_options(service_options)
    if services is None:  # bad prices or no API key: fail before a run is recorded
        service_options = {**service_options, "prices": _checked_prices(wf, service_options)}
        _check_api_key(wf, service_options.get("client"))
    db, owned = _open_store(store)
    try:
        run_id = run_id or new_run_id()
        if db is not None:
            db.start_run(run_id, wf, values, recorded)
        return await _execute(wf, values, db, run_id, services, service_options, completed=None)
    finally:
        if owned:
            db.close()


async def _execute(
    wf: LoadedWorkflow,
    values: dict[str, Any],
    db: Any,
    run_id: str,
    services: Services | None,
    service_options: dict[str, Any],
    completed: dict[str, Any] | None,
) -> RunResult:
    own = services is None
    if own:
        if service_options.get("cache") is True:
            service_options = {**service_options, "cache": db, "cache_all": True}
        elif service_options.get("cache") in (None, False):
            service_options = {**service_options, "cache": db}
        services = make_services(wf, **service_options, threads=db)
    else:  # the caller's services, with this run's store for threads (theirs stay as they are)
        services = dataclasses.replace(services, threads=db)
    if completed and services.budget is not None:
        services.budget.spent += sum(r.cost_usd for r in completed.values())
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
            await services.aclose()  # type: ignore[union-attr]
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


def _recorded_options(options: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "max_cost",
        "prices",
        "transcripts",
    )  # what resume reuses; a PriceTable object cannot be stored
    return {
        k: str(v) if isinstance(v, Path) else v
        for k, v in options.items()
        if k in keep and isinstance(v, (str, Path, int, float))
    }


async def aresume_run(
    run_id: str, *, store: StoreOption = True, force: bool = False, **service_options: Any
) -> RunResult:
    """Finish a failed or interrupted run: completed steps are loaded, the rest are run.

    The workflow file is re-read; if it changed in a way that affects completed steps,
    resuming is refused (``force=True`` resumes anyway).
    """
    from flowrun.engine.resume import plan_resume

    db, owned = _open_store(store)
    if db is None:
        raise UsageError("resume needs the run store")
    try:
        plan = plan_resume(db, run_id, force=force)
        for key, value in plan.options.items():
            service_options.setdefault(key, value)
        db.mark_resumed(plan.run_id)
        result = await _execute(
            plan.workflow,
            plan.inputs,
            db,
            plan.run_id,
            None,
            service_options,
            completed=plan.completed,
        )
        result.kept_steps = [sid for sid in result.steps if sid in plan.completed]
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
