"""Prices per 1M tokens: the table shipped in ``data/prices.json``, overridable by the user.

A model missing from the table is *unpriced*: its cost is ``None`` and reports list it,
never count it as $0.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, fields
from functools import lru_cache
from pathlib import Path
from typing import Any

from flowrun.errors import UsageError
from flowrun.provider.catalog import base_model_name, load_data_file
from flowrun.results import Usage

PRICES_ENV = "FLOWRUN_PRICES"


@dataclass(frozen=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None
    batch_input: float | None = None
    batch_output: float | None = None

    @property
    def has_batch_price(self) -> bool:
        """Whether the Batch API has its own price (else the list price)."""
        return self.batch_input is not None or self.batch_output is not None

    def cost(self, usage: Usage, *, batch: bool = False) -> float:
        """Dollars for ``usage`` at these rates (the Batch API's with ``batch``)."""
        in_rate, out_rate = self.input, self.output
        cached_rate = self.cached_input if self.cached_input is not None else self.input
        if batch:
            in_rate = self.batch_input if self.batch_input is not None else in_rate
            out_rate = self.batch_output if self.batch_output is not None else out_rate
            cached_rate = min(cached_rate, in_rate)
        cached = min(usage.cached_tokens, usage.prompt_tokens)
        fresh = usage.prompt_tokens - cached
        return (fresh * in_rate + cached * cached_rate + usage.completion_tokens * out_rate) / 1e6


class PriceTable:
    """Looks up a model's price (dated snapshots resolve to the base model) and prices usage."""

    def __init__(self, table: dict[str, dict[str, Any]]) -> None:
        self._table = {name: Price(**entry) for name, entry in table.items()}

    def price(self, model: str) -> Price | None:
        return self._table.get(base_model_name(model, self._table))

    def is_priced(self, model: str) -> bool:
        return self.price(model) is not None

    def cost(self, model: str, usage: Usage, *, batch: bool = False) -> float | None:
        """Dollars for ``usage`` on ``model``; None when the model is unpriced."""
        p = self.price(model)
        return None if p is None else p.cost(usage, batch=batch)

    def worst_case(
        self, model: str, prompt_tokens: int, max_completion_tokens: int, *, batch: bool = False
    ) -> float | None:
        """The most a call can cost: every prompt token uncached plus the full output budget."""
        return self.cost(model, Usage(prompt_tokens, max_completion_tokens), batch=batch)


class ServerPriceTable(PriceTable):
    """A server's prices: its own entries ('*' for every model), then ``fallback`` (or none:
    a model with no entry is unpriced)."""

    def __init__(self, table: dict[str, dict[str, Any]], fallback: PriceTable | None) -> None:
        self._any = Price(**table["*"]) if "*" in table else None
        super().__init__({k: v for k, v in table.items() if k != "*"})
        self._fallback = fallback

    def price(self, model: str) -> Price | None:
        own = super().price(model) or self._any
        if own is not None or self._fallback is None:
            return own
        return self._fallback.price(model)


def load_price_table(override: str | Path | None = None) -> PriceTable:
    """The shipped table, updated by ``override`` (or ``$FLOWRUN_PRICES``) when given."""
    path = override or os.environ.get(PRICES_ENV)
    return _load(str(path) if path else None)


@lru_cache(maxsize=8)
def _load(path: str | None) -> PriceTable:
    table = load_data_file("prices.json")
    if path:
        from flowrun.format.textfile import NotText, read_text

        try:
            extra = json.loads(read_text(path))  # a FIFO refused unopened, UTF-8 checked
        except OSError as exc:
            raise UsageError(f"cannot read the price file {path}: {exc.strerror}") from None
        except NotText as exc:
            raise UsageError(f"the price file {path}: {exc}") from None
        except ValueError as exc:
            raise UsageError(f"the price file {path} is not valid JSON: {exc}") from None
        except RecursionError:
            raise UsageError(f"the price file {path} is nested too deep") from None
        if not isinstance(extra, dict):
            raise UsageError(f"the price file {path} must map model names to prices")
        for name, entry in extra.items():
            if not name.startswith("_"):
                table[name] = _checked_entry(path, name, entry)
    return PriceTable(table)


def _checked_entry(path: str, name: str, entry: Any) -> dict[str, float]:
    """One model's prices from a user file, or a ``UsageError`` saying what is wrong."""
    allowed = [f.name for f in fields(Price)]
    if not isinstance(entry, dict) or "input" not in entry or "output" not in entry:
        raise UsageError(f"{path}: price of '{name}' needs input and output (USD per 1M tokens)")
    for key, value in entry.items():
        if key not in allowed:
            raise UsageError(
                f"{path}: price of '{name}' has unknown key '{key}' (known: {', '.join(allowed)})"
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise UsageError(
                f"{path}: price of '{name}': {key} must be a number >= 0 (USD per 1M tokens), "
                f"got {value!r}"
            )
    return {k: float(v) for k, v in entry.items()}
