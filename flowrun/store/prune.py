"""``flowrun runs prune``: delete old runs and batches with everything they hold, then shrink.

A run takes its steps and transcripts; a batch its records, stored steps and Batch API
state. Runs still running are never deleted. Conversation threads and the response cache
are not runs and stay. The file is compacted afterwards (``VACUUM``), so the store shrinks.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flowrun.store.history import list_history
from flowrun.store.runs import RunStore


@dataclass
class PruneReport:
    runs: int
    batches: int
    bytes_before: int
    bytes_after: int

    def to_json(self) -> dict[str, Any]:
        return {
            "deleted_runs": self.runs,
            "deleted_batches": self.batches,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
        }


def prune(
    store: RunStore, *, older_than: timedelta | None = None, keep: int | None = None
) -> PruneReport:
    """Delete runs started before ``now - older_than`` and/or all but the newest ``keep``."""
    every = list_history(store, limit=None)
    doomed = [r for r in every if r.status != "running"]
    if keep is not None:
        newest = {r.id for r in every[:keep]}
        doomed = [r for r in doomed if r.id not in newest]
    if older_than is not None:
        cutoff = (datetime.now(timezone.utc) - older_than).isoformat(timespec="milliseconds")
        doomed = [r for r in doomed if r.started_at < cutoff]
    runs = [(r.id,) for r in doomed if r.kind == "run"]
    batches = [(r.id,) for r in doomed if r.kind != "run"]
    before = _size(store)
    statements = [
        ("DELETE FROM steps WHERE run_id=?", runs),
        ("DELETE FROM runs WHERE id=?", runs),
        ("DELETE FROM batch_records WHERE batch_id=?", batches),
        ("DELETE FROM batch_steps WHERE batch_id=?", batches),
        ("DELETE FROM batch_api_requests WHERE run_id=?", batches),
        ("DELETE FROM batch_api_results WHERE run_id=?", batches),
        ("DELETE FROM batch_api_files WHERE run_id=?", batches),
        ("DELETE FROM batch_api_runs WHERE run_id=?", batches),
        ("DELETE FROM batches WHERE id=?", batches),
    ]
    store.write_many(statements)
    if runs or batches:
        _compact(store)
    return PruneReport(len(runs), len(batches), before, _size(store))


def _compact(store: RunStore) -> None:
    """VACUUM, then fold the write-ahead log back so the file on disk shrinks."""
    store.db.compact()


def _size(store: RunStore) -> int:
    total = 0
    for suffix in ("", "-wal"):
        with contextlib.suppress(OSError):
            total += os.path.getsize(f"{store.path}{suffix}")
    return total
