"""Each named server's prices, from its ``prices:`` setting and the run's price table.

A server with a ``base_url`` may serve models under OpenAI's names without OpenAI's prices
(llama.cpp's and LiteLLM's servers alias them), so its models are priced only by its own
``prices:`` (``'*'`` for every model; ``prices: openai`` for flowrun's table); a model it does
not price is *unpriced*, never $0. OpenAI and Azure servers (no ``base_url``) use the run's
table, under their own ``prices:`` entries.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from flowrun.provider.pricing import PriceTable, ServerPriceTable

if TYPE_CHECKING:
    from flowrun.format.spec import ServerSpec
    from flowrun.format.workflow import LoadedWorkflow


def server_price_table(spec: ServerSpec, table: PriceTable) -> PriceTable:
    """A server's price table, given the run's ``table``."""
    if spec.prices == "openai" or (spec.prices is None and spec.base_url is None):
        return table
    entries = {
        model: price.model_dump(exclude_none=True) for model, price in (spec.prices or {}).items()
    }
    return ServerPriceTable(entries, table if spec.base_url is None else None)


def price_tables(wf: LoadedWorkflow, table: PriceTable) -> dict[str, PriceTable]:
    """The price table of every server the workflow can use, by name."""
    return {name: server_price_table(e.spec, table) for name, e in wf.servers.items()}


def step_prices(wf: LoadedWorkflow, sid: str, table: PriceTable, tables: dict[str, Any]) -> Any:
    """The price table of the server a step calls (``table`` without one)."""
    from flowrun.format.server_checks import step_server

    name = step_server(wf, sid)
    return tables.get(name, table) if name else table
