"""Holding loopback batches back, and logs of the batches: which custom_ids, in which order
they were created and ended.

For tests that assert causality rather than time: hold every batch holding a matching
``custom_id`` in progress until a condition on the server's batches is true, and read the
order of creations and completions from ``events``::

    server.batch_api.hold(r"^r2\\.", until=lambda batches: any(
        c.startswith("r0.b.") for b in batches for c in b.custom_ids))
    ...
    server.batch_api.events  # [("created", "batch_loopback1"), ..., ("completed", ...)]
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

BatchRecord = Any  # flowrun.testing.batches.BatchRecord (which imports this module)

__all__ = ["BatchHolds", "Hold"]


@dataclass
class Hold:
    pattern: re.Pattern[str]
    until: Callable[[list[BatchRecord]], bool]
    at_most: float  # seconds: a held batch completes after this anyway (no test hangs)
    since: dict[str, float] = field(default_factory=dict)


class BatchHolds:
    """Mixed into ``BatchAPI``: ``hold``, ``events`` and the custom_id logs (its lock guards
    them)."""

    batches: list[BatchRecord]
    server: Any

    def _init_holds(self) -> None:
        self.holds: list[Hold] = []
        #: ("created" | a terminal status, batch id), in the order the server saw them
        self.events: list[tuple[str, str]] = []

    def hold(
        self,
        custom_id: str,
        *,
        until: Callable[[list[BatchRecord]], bool],
        at_most: float = 30.0,
    ) -> None:
        """Keep every batch with a custom_id matching the regex ``custom_id`` in progress
        until ``until(batches)`` is true (called under the server's lock: read, don't lock),
        or ``at_most`` seconds passed."""
        with self.server._lock:
            self.holds.append(Hold(re.compile(custom_id), until, at_most))

    def _held(self, batch: BatchRecord) -> bool:
        for hold in self.holds:
            if not any(hold.pattern.search(c) for c in batch.custom_ids):
                continue
            started = hold.since.setdefault(batch.id, time.monotonic())
            if not hold.until(self.batches) and time.monotonic() - started < hold.at_most:
                return True
        return False

    def submitted_custom_ids(self) -> list[str]:
        """Every custom_id of every created batch, in submission order (duplicates kept)."""
        with self.server._lock:
            return [cid for b in self.batches for cid in b.custom_ids]

    def batches_for(self, endpoint: str = "/v1/chat/completions") -> list[BatchRecord]:
        with self.server._lock:
            return [b for b in self.batches if b.endpoint == endpoint]

    def _event(self, what: str, batch_id: str) -> None:
        self.events.append((what, batch_id))
