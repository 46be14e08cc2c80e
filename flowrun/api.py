"""The Python API: run a loaded workflow (sync or async). The CLI calls exactly these."""

from __future__ import annotations

import asyncio
import concurrent.futures
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .budget import BudgetGate
from .client import ModelClient
from .errors import UsageError
from .executor import Executor, Recorder
from .inputs import resolve_inputs
from .loader import LoadedWorkflow, load_workflow
from .pricing import PriceTable, load_price_table
from .results import RunResult
from .runtime import ResponseCache, Services
from .tools import Toolbox


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
) -> Services:
    """The services one run (or one batch) shares."""
    table = prices if isinstance(prices, PriceTable) else load_price_table(prices)
    limit = max_cost if max_cost is not None else (wf.spec.budget.max_cost_usd if wf.spec.budget else None)
    if limit is not None:
        _check_priced(wf, table)
    return Services(
        client=client or ModelClient(),
        prices=table,
        budget=BudgetGate(limit, table) if limit is not None else None,
        cache=cache,
        cache_all=cache_all,
        toolbox=Toolbox.from_workflow(wf),
        on_text=on_text,
    )


def _check_priced(wf: LoadedWorkflow, prices: PriceTable) -> None:
    from .catalog import DEFAULT_EMBED_MODEL

    for sid, step in wf.spec.steps.items():
        if step.type == "tool":
            continue
        model = getattr(step, "model", None) or (DEFAULT_EMBED_MODEL if step.type == "embed" else wf.spec.defaults.model)
        if model and not prices.is_priced(model):
            raise UsageError(
                f"step '{sid}' uses {model}, which has no price, so the budget cannot be kept: "
                "add it to a price file (--prices / FLOWRUN_PRICES)"
            )


async def arun_workflow(
    workflow: LoadedWorkflow | str | Path,
    inputs: dict[str, Any] | None = None,
    *,
    services: Services | None = None,
    run_id: str | None = None,
    recorder: Recorder | None = None,
    completed: dict[str, Any] | None = None,
    **service_options: Any,
) -> RunResult:
    """Run a workflow on the current event loop and return its ``RunResult``.

    ``service_options`` (``client``, ``prices``, ``max_cost``, ``cache``, ``on_text``) build the
    run's services when ``services`` is not given. Invalid inputs raise ``UsageError``.
    """
    wf = _as_workflow(workflow)
    values = resolve_inputs(wf.spec, inputs)
    own = services is None
    services = services or make_services(wf, **service_options)
    executor = Executor(wf, values, services, run_id=run_id or new_run_id(), recorder=recorder, completed=completed)
    try:
        return await executor.run()
    finally:
        if own:
            await services.client.aclose()


def run_workflow(workflow: LoadedWorkflow | str | Path, inputs: dict[str, Any] | None = None, **options: Any) -> RunResult:
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
