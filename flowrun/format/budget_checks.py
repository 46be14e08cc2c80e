"""Whether a budget can be kept at all: every model priced, every output bounded.

Run by ``flowrun validate`` (for ``budget.max_cost_usd``) and by the API before a run with a
budget (``max_cost``), with the price table the run will use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from flowrun.errors import Problem
from flowrun.format.spec import INVALID_MODEL
from flowrun.provider.pricing import PriceTable

if TYPE_CHECKING:
    from flowrun.format.workflow import LoadedWorkflow


def budget_problems(wf: LoadedWorkflow, prices: PriceTable, source: str) -> list[Problem]:
    """Why a budget (named by ``source``) cannot be kept: unpriced models, unknown output limits.

    One problem per place in the file: a step's ``model:``, ``defaults.model`` (listing the
    steps that use it), or an embed step that relies on the default embedding model.
    """
    from flowrun.format.server_checks import step_server
    from flowrun.format.server_prices import price_tables, step_prices
    from flowrun.provider.catalog import DEFAULT_EMBED_MODEL

    tables = price_tables(wf, prices)  # each named server's prices
    users: dict[tuple[tuple[str, ...], str, str | None], list[str]] = {}
    unbounded: list[Problem] = []
    for sid, step in wf.spec.steps.items():
        if step.type == "tool":
            continue
        if getattr(step, "model", None):
            where, model = ("steps", sid, "model"), step.model
        elif step.type == "embed":
            where, model = ("steps", sid), DEFAULT_EMBED_MODEL
        else:
            where, model = ("defaults", "model"), wf.spec.defaults.model
        if model == INVALID_MODEL:
            continue  # not a model name: reported by the loader
        if model and not step_prices(wf, sid, prices, tables).is_priced(model):
            users.setdefault((where, model, step_server(wf, sid)), []).append(sid)
        elif model and step.type != "embed" and not _output_bound(wf, step, model):
            line, col = wf.source.locate(("steps", sid), key=True)
            unbounded.append(
                Problem(
                    wf.file,
                    line,
                    col,
                    f"step '{sid}': the output limit of {model} is unknown, so the budget "
                    f"({source}) cannot be kept: set max_completion_tokens on the step or under defaults",
                )
            )
    problems = unbounded
    for (where, model, server), steps in users.items():
        line, col = wf.source.locate(where, key=len(where) == 2 and where[0] == "steps")
        named = ", ".join(f"'{s}'" for s in steps)
        problems.append(
            Problem(
                wf.file,
                line,
                col,
                f"model {model} (step{'s' if len(steps) > 1 else ''} {named}) has no price, so "
                f"the budget ({source}) cannot be kept: "
                + (
                    f"give it a price under prices: of server '{server}'"
                    if server
                    else "add it to a price file (the run's prices or FLOWRUN_PRICES)"
                )
                + " or use a priced model",
            )
        )
    return problems


def _output_bound(wf: LoadedWorkflow, step: object, model: str) -> bool:
    """Whether a model step's worst-case output is known (its setting, or the model table's)."""
    from flowrun.provider.catalog import model_info

    if getattr(step, "max_completion_tokens", None) or wf.spec.defaults.max_completion_tokens:
        return True
    info = model_info(model)
    return bool(info and info.max_output_tokens)
