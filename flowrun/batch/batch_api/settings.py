"""Settings of a Batch API run (polling, file limits) and its budget, checked a wave at a time."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from typing import Any

from flowrun.batch.batch_api.lines import Limits
from flowrun.batch.runner import CURRENT_RECORD
from flowrun.engine.budget import BudgetGate, Reservation
from flowrun.provider.pricing import PriceTable

POLL_ENV = "FLOWRUN_BATCH_POLL"  # "INITIAL[,MAX]" seconds between polls
LIMITS_ENV = "FLOWRUN_BATCH_LIMITS"  # "REQUESTS[,BYTES[,EMBEDDING_INPUTS]]" per file (tests)
QUEUE_ENV = "FLOWRUN_BATCH_QUEUE_TOKENS"  # the account's enqueued-token limit per model
#: Enqueued tokens per model flowrun keeps in flight unless told more: the lowest limit of
#: the models that offer the Batch API at OpenAI's first paid tier (gpt-4o-mini: 2,000,000).
#: A ``token_limit_exceeded`` refusal lowers it for the rest of the run.
DEFAULT_QUEUE_TOKENS = 2_000_000


@dataclass(frozen=True)
class WaveSettings:
    """Polling and file limits. Polls start at ``poll_initial`` s and grow 1.5x to ``poll_max``."""

    poll_initial: float = 5.0
    poll_max: float = 60.0
    limits: Limits = field(default_factory=Limits)
    max_poll_errors: int = 20  # consecutive failed polls of one batch before its requests fail
    #: times a batch refused for the enqueued-token limit is created again (not an attempt)
    token_limit_holds: int = 5
    #: estimated input tokens per model in batches not yet finished (the enqueued-token limit)
    queue_tokens: int = DEFAULT_QUEUE_TOKENS

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
        if raw := os.environ.get(QUEUE_ENV):
            values["queue_tokens"] = max(1, int(raw.replace("_", "")))
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass
class HeldReservation(Reservation):
    key: tuple[int | None, str] = (None, "")


class WaveBudget(BudgetGate):
    """Books each parked request's worst case at Batch API prices; the wave is checked whole.

    ``reserve`` never refuses (a request is only parked); the coordinator refuses a wave whose
    booked worst case could take the run past the limit, before anything is uploaded. A
    reservation is held per record and step (or item) until it is settled, so a suspended
    record that runs again and asks for the same request books it once.
    """

    def __init__(self, limit: float, prices: Any, spent: float = 0.0) -> None:
        super().__init__(limit, prices, spent)
        self._held: dict[tuple[int | None, str], HeldReservation] = {}

    def settle(self, reservation: Reservation, actual: float | None) -> None:
        if isinstance(reservation, HeldReservation):
            self._held.pop(reservation.key, None)
        super().settle(reservation, actual)

    def reserve(
        self,
        label: str,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        *,
        batch: bool = True,
        prices: PriceTable | None = None,
    ) -> Reservation:
        key = (CURRENT_RECORD.get(), label)
        held = self._held.get(key)
        if held is not None:  # a suspended record asks again: booked once
            return held
        worst = self.worst_case(
            model, prompt_tokens, max_completion_tokens, batch=True, prices=prices
        )
        self.reserved += worst
        self._held[key] = HeldReservation(worst, key)
        return self._held[key]

    def over(self) -> bool:
        return self.spent + self.reserved > self.limit + 1e-12

    def refusal(self, wave: int, requests: int) -> str:
        return (
            f"budget: wave {wave} ({requests} requests) could cost up to ${self.reserved:.6f} at "
            f"Batch API prices, which could take the run past its budget of ${self.limit:g} "
            f"(spent ${self.spent:.6f}); nothing was submitted. Raise budget.max_cost_usd or "
            "the run's max_cost, or lower max_completion_tokens."
        )


class TokenQueue:
    """Estimated input tokens per model in batches not yet finished, kept under the account's
    enqueued-token limit: a file waits for room (unless nothing of its model is queued), and
    a ``token_limit_exceeded`` refusal lowers the limit for the rest of the run."""

    def __init__(self, limit: int) -> None:
        self.default = limit
        self.limits: dict[str, int] = {}
        self.queued: dict[str, int] = {}
        self._freed: asyncio.Event | None = None

    def limit(self, model: str) -> int:
        return self.limits.get(model, self.default)

    def fits(self, model: str, tokens: int) -> bool:
        queued = self.queued.get(model, 0)
        return not queued or queued + tokens <= self.limit(model)

    async def enter(self, model: str, tokens: int) -> None:
        """Wait for room for ``tokens`` more of ``model``, then count them as queued."""
        while not self.fits(model, tokens):
            if self._freed is None:
                self._freed = asyncio.Event()
            self._freed.clear()
            await self._freed.wait()
        self.queued[model] = self.queued.get(model, 0) + tokens

    def leave(self, model: str, tokens: int) -> None:
        """Those tokens left the queue (their batch ended, or was refused)."""
        self.queued[model] = max(0, self.queued.get(model, 0) - tokens)
        if self._freed is not None:
            self._freed.set()

    def refused(self, model: str) -> None:
        """The API refused a batch for the enqueued-token limit while ``queued`` (that batch
        included) was in flight: the real limit is lower than that."""
        lowered = int(0.8 * self.queued.get(model, 0))
        self.limits[model] = max(1, min(self.limit(model), lowered))
