"""Settings of a Batch API run (polling, file limits) and its budget, checked a wave at a time."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from flowrun.batch.batch_api.lines import Limits
from flowrun.engine.budget import BudgetGate, Reservation

POLL_ENV = "FLOWRUN_BATCH_POLL"  # "INITIAL[,MAX]" seconds between polls
LIMITS_ENV = "FLOWRUN_BATCH_LIMITS"  # "REQUESTS[,BYTES[,EMBEDDING_INPUTS]]" per file (tests)


@dataclass(frozen=True)
class WaveSettings:
    """Polling and file limits. Polls start at ``poll_initial`` s and grow 1.5x to ``poll_max``."""

    poll_initial: float = 5.0
    poll_max: float = 60.0
    limits: Limits = field(default_factory=Limits)
    max_poll_errors: int = 20  # consecutive failed polls of one batch before its requests fail
    #: times a batch refused for the enqueued-token limit is created again (not an attempt)
    token_limit_holds: int = 5

    @classmethod
    def from_env(cls, **overrides: Any) -> WaveSettings:
        values: dict[str, Any] = {}
        if raw := os.environ.get(POLL_ENV):
            first, _, last = raw.partition(",")
            values["poll_initial"] = float(first)
            values["poll_max"] = float(last or max(float(first), cls.poll_max))
        if raw := os.environ.get(LIMITS_ENV):
            given = [int(x) for x in raw.split(",") if x.strip()]
            values["limits"] = Limits(*given[:3])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class WaveBudget(BudgetGate):
    """Books each parked request's worst case at Batch API prices; the wave is checked whole.

    ``reserve`` never refuses (a request is only parked); the coordinator refuses a wave whose
    booked worst case could take the run past the limit, before anything is uploaded.
    """

    def reserve(
        self,
        label: str,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        *,
        batch: bool = True,
    ) -> Reservation:
        worst = self.prices.worst_case(model, prompt_tokens, max_completion_tokens, batch=True)
        if worst is None:
            return super().reserve(label, model, prompt_tokens, max_completion_tokens, batch=True)
        self.reserved += worst
        return Reservation(worst)

    def over(self) -> bool:
        return self.spent + self.reserved > self.limit + 1e-12

    def refusal(self, wave: int, requests: int) -> str:
        return (
            f"budget: wave {wave} ({requests} requests) could cost up to ${self.reserved:.6f} at "
            f"Batch API prices, which could take the run past its budget of ${self.limit:g} "
            f"(spent ${self.spent:.6f}); nothing was submitted. Raise budget.max_cost_usd or "
            "--max-cost, or lower max_completion_tokens."
        )
