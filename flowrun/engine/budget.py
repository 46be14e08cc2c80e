"""The budget cap: reserve each call's worst case before it is made, settle it after."""

from __future__ import annotations

from dataclasses import dataclass

from flowrun.errors import BudgetExceeded
from flowrun.provider.pricing import PriceTable


@dataclass
class Reservation:
    amount: float


class BudgetGate:
    """Refuses a call whose worst case could take the run past ``limit`` dollars.

    ``reserve`` checks and books in one synchronous step, so concurrent steps on one event
    loop reserve atomically.
    """

    def __init__(self, limit: float, prices: PriceTable, spent: float = 0.0) -> None:
        self.limit = limit
        self.prices = prices
        self.spent = spent
        self.reserved = 0.0

    def reserve(
        self,
        label: str,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        *,
        batch: bool = False,
        prices: PriceTable | None = None,
    ) -> Reservation:
        """Book the call's worst case, or raise ``BudgetExceeded`` if it could pass the limit."""
        # (``label`` names the step or item asking; the step's error says which, so the
        # messages do not repeat it). ``prices``: the step's server's, else the run's.
        worst = self.worst_case(
            model, prompt_tokens, max_completion_tokens, batch=batch, prices=prices
        )
        if self.spent + self.reserved + worst > self.limit + 1e-12:
            raise BudgetExceeded(
                f"budget: the call could cost up to ${worst:.6f} ({prompt_tokens} prompt + "
                f"{max_completion_tokens} completion tokens of {model}), which could take the run past "
                f"its budget of ${self.limit:g} (spent ${self.spent:.6f}, in flight ${self.reserved:.6f}); "
                "no call was made. Raise budget.max_cost_usd or the run's max_cost, or lower max_completion_tokens."
            )
        return self.book(worst)

    def worst_case(
        self,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        *,
        batch: bool = False,
        prices: PriceTable | None = None,
    ) -> float:
        """The call's highest possible cost (at ``prices``, else the run's); ``BudgetExceeded``
        if the model is unpriced."""
        table = prices or self.prices
        worst = table.worst_case(model, prompt_tokens, max_completion_tokens, batch=batch)
        if worst is None:
            raise BudgetExceeded(
                f"budget: model {model} is unpriced, so the budget cannot be kept; add it to a price file (the run's prices)"
            )
        return worst

    def book(self, worst: float) -> Reservation:
        """Hold ``worst`` dollars until the call settles."""
        self.reserved += worst
        return Reservation(worst)

    def settle(self, reservation: Reservation, actual: float | None) -> None:
        self.reserved = max(0.0, self.reserved - reservation.amount)
        self.spent += actual if actual is not None else reservation.amount
