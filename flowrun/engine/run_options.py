"""What a caller chooses about a run (``RunOptions``), and the one factory that builds the
run's ``Services`` from it, complete: nothing is set on them afterwards.

The Python API's keyword arguments (``run_workflow(..., max_cost=0.1, cache=True)``), the
CLI's flags and a stored run's options (what ``resume`` reuses) all become one
``RunOptions``; ``make_services`` is the only place a ``Services`` is assembled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun.engine.budget import BudgetGate
from flowrun.engine.services import Services
from flowrun.errors import UsageError, WorkflowInvalid
from flowrun.provider.interface import ModelClient
from flowrun.provider.pricing import PriceTable, load_price_table

if TYPE_CHECKING:
    from flowrun.format.loader import LoadedWorkflow

#: The options a stored run keeps, so that ``resume`` runs the rest the same way.
RECORDED = ("max_cost", "prices", "transcripts")


@dataclass(frozen=True)
class RunOptions:
    """The caller's choices about a run's model calls (every field has the CLI's default).

    ``client``: a model client that serves every step (``--mock``, a test double); None is
    the openai SDK's client from the environment, and steps with ``server:`` call their own
    server. ``prices``: a price table or a price file over the shipped one. ``max_cost``: the
    budget in dollars (else the file's ``budget.max_cost_usd``). ``cache``: True reuses stored
    replies for every model call (steps with ``cache: true`` always do). ``transcripts``:
    False keeps no record of what each call sent and got. ``on_text`` receives streamed text,
    ``on_step`` each step's progress (``"waiting"``, ``"running"``, ``"done"``).
    """

    client: ModelClient | None = None
    prices: PriceTable | str | Path | None = None
    max_cost: float | None = None
    cache: bool = False
    transcripts: bool = True
    on_text: Callable[[str, str], None] | None = None
    on_step: Callable[[str, str, Any], None] | None = None

    def __post_init__(self) -> None:
        if self.max_cost is not None:
            check_max_cost(self.max_cost)
        if not isinstance(self.cache, bool):
            raise UsageError(f"cache={self.cache!r}: give True or False")

    def recorded(self) -> dict[str, Any]:
        """What the run store keeps of these options (a price table object cannot be kept)."""
        kept: dict[str, Any] = {"max_cost": self.max_cost, "transcripts": self.transcripts}
        if isinstance(self.prices, (str, Path)):
            kept["prices"] = str(self.prices)
        return {k: v for k, v in kept.items() if v is not None}

    def over(self, stored: dict[str, Any]) -> RunOptions:
        """These options where the caller gave them, else a stored run's (``resume``)."""
        given = {k: stored[k] for k in RECORDED if k in stored}
        return replace(self, **given)

    def ready(self, wf: LoadedWorkflow) -> RunOptions:
        """These options with the price table loaded, checked before anything is recorded or
        called: ``UsageError`` if the price file is unreadable or a key is missing,
        ``WorkflowInvalid`` if a budget cannot be kept (a model without a price) or a named
        server's key variable is unset."""
        table = _table(self.prices)
        budget_limit(wf, table, self.max_cost)
        check_keys(wf, self.client)
        return replace(self, prices=table)


def check_max_cost(max_cost: Any) -> None:
    """A budget is a positive, finite number of dollars: NaN would compare false with every
    cost and so turn the budget off; infinity and negatives are no budget either."""
    if (
        isinstance(max_cost, bool)
        or not isinstance(max_cost, (int, float))
        or not math.isfinite(max_cost)
        or max_cost <= 0
    ):
        raise UsageError(
            f"max_cost={max_cost!r} is not a budget: give a positive, finite number of dollars"
        )


def budget_limit(wf: LoadedWorkflow, prices: PriceTable, max_cost: float | None) -> float | None:
    """The run's budget (``max_cost``, else ``budget.max_cost_usd``), or None.

    A budget needs every model priced: otherwise ``WorkflowInvalid`` at FILE:LINE of the model.
    """
    from flowrun.format.budget_checks import budget_problems

    if max_cost is not None:  # (checked when its RunOptions was made)
        limit, source = max_cost, f"max_cost={max_cost:g}"
    elif wf.spec.budget is not None:
        limit, source = wf.spec.budget.max_cost_usd, "budget.max_cost_usd"
    else:
        return None
    problems = budget_problems(wf, prices, source)
    if problems:
        raise WorkflowInvalid(problems)
    return limit


def check_keys(wf: LoadedWorkflow, client: ModelClient | None) -> None:
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
            "or try the workflow offline with client=MockClient() (flowrun.provider.mock)",
        )


def make_services(
    wf: LoadedWorkflow,
    options: RunOptions,
    *,
    store: Any = None,
    spent: float = 0.0,
    gate: type[BudgetGate] = BudgetGate,
    wrap: Callable[[ModelClient], ModelClient] | None = None,
) -> Services:
    """The services one run (or one batch) shares, complete.

    ``store`` is the run store that keeps the response cache and conversation threads (None:
    neither); ``spent`` the dollars earlier invocations of the run already spent (a resume),
    which the budget starts from; ``gate`` the budget gate's class (a batch's tells records
    apart); ``wrap`` wraps the run's client (``--rpm``/``--tpm``).
    """
    from flowrun.engine.servers import price_tables, server_clients
    from flowrun.engine.tools import Toolbox

    table = _table(options.prices)
    limit = budget_limit(wf, table, options.max_cost)
    client = options.client or _openai_client()
    return Services(
        client=wrap(client) if wrap is not None else client,
        # a caller's client (e.g. --mock) serves every step; else steps call their server
        servers=server_clients(wf) if options.client is None else None,
        server_prices=price_tables(wf, table),
        prices=table,
        budget=gate(limit, table, spent) if limit is not None else None,
        cache=store,  # the run store keeps the response cache
        cache_all=options.cache,
        toolbox=Toolbox.from_workflow(wf),
        on_text=options.on_text,
        on_step=options.on_step,
        transcripts=options.transcripts,
        threads=store,
    )


def _table(prices: PriceTable | str | Path | None) -> PriceTable:
    return prices if isinstance(prices, PriceTable) else load_price_table(prices)


def _openai_client() -> ModelClient:
    from flowrun.provider.client import OpenAIClient

    return OpenAIClient()
