"""One history over the run store: single runs, live batches and Batch API batches together.

Read-only queries for ``flowrun runs`` and ``flowrun view`` (they select only the columns a
listing shows, so a store of many runs lists in milliseconds), and ``prune``, which deletes
old runs with everything they hold and then shrinks the file.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flowrun.errors import UnknownRun, UsageError
from flowrun.store.runs import RunStore
from flowrun.store.transcripts import load_transcript

KINDS = ("run", "batch", "batch-api")
STATUSES = ("running", "succeeded", "failed", "interrupted")
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_RUNS = (
    "SELECT id, 'run', workflow_name, status, started_at, ended_at, cost_usd, pid, NULL,"
    " workflow_path, error, cost_note FROM runs"
)
_VIA_API = 'options LIKE \'%"via": "batch-api"%\''
_BATCHES = (
    f"SELECT id, CASE WHEN {_VIA_API} THEN 'batch-api' ELSE 'batch' END,"
    " workflow_name, status, started_at, ended_at, NULL, pid, summary, workflow_path, NULL,"
    " NULL FROM batches"
)


@dataclass
class HistoryRow:
    """One line of the history: a run or a batch."""

    id: str
    kind: str  # run | batch | batch-api
    workflow: str
    status: str
    started_at: str
    ended_at: str | None
    cost_usd: float | None  # None: no dollar figure (see cost_note)
    records: int | None = None  # batches: records with an outcome
    metrics: dict[str, Any] | None = None
    path: str | None = None  # the workflow file
    error: str | None = None
    #: why cost_usd is None: "unpriced" (a model with no price) or "mock" (``--mock``: no dollars)
    cost_note: str | None = None

    @property
    def duration_s(self) -> float | None:
        if not self.ended_at:
            return None
        return (_parse(self.ended_at) - _parse(self.started_at)).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "kind": self.kind,
            "workflow": self.workflow,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_s": None if self.duration_s is None else round(self.duration_s, 3),
            "records": self.records,
            "cost_usd": None if self.cost_usd is None else round(self.cost_usd, 8),
            "cost_note": self.cost_note,
            "path": self.path,
            "error": self.error,
        }


_MAX_AGE_S = 1000 * 365 * 86_400


def parse_age(text: str, option: str = "--older-than") -> timedelta:
    """``30d``, ``12h``, ``90m``, ``2w``, ``45s`` as a ``timedelta``; ``UsageError`` otherwise."""
    match = _AGE.match(text)
    if not match:
        raise UsageError(f"{option} '{text}': give an age like 30d, 12h, 90m or 2w")
    seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds > _MAX_AGE_S:  # a timedelta (or the date it leads to) would overflow
        raise UsageError(f"{option} '{text}': give an age under 1,000 years")
    return timedelta(seconds=seconds)


def parse_since(text: str) -> str:
    """``--since``: an age (``7d``) or a date/time (``2026-12-01``), as a stored timestamp."""
    try:
        when = datetime.now(timezone.utc) - parse_age(text, "--since")
    except UsageError:
        try:
            when = datetime.fromisoformat(text.strip())
        except ValueError:
            raise UsageError(
                f"--since '{text}': give an age like 7d or 12h, or a date like 2026-12-01"
            ) from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat(timespec="milliseconds")


def list_history(
    store: RunStore,
    *,
    limit: int | None = 20,
    offset: int = 0,
    workflow: str | None = None,
    status: str | None = None,
    kind: str | None = None,
    since: str | None = None,
    ident: str | None = None,
) -> list[HistoryRow]:
    """Runs and batches, newest first, filtered; ``since`` is a stored timestamp."""
    where, params = [], []
    if ident:
        where.append("id = ?")
        params.append(ident)
    if workflow:
        where.append("workflow_name = ?")
        params.append(workflow)
    if since:
        where.append("started_at >= ?")
        params.append(since)
    # a "running" row whose process died reports "interrupted": filter those after reading
    lively = status in ("running", "interrupted")
    if status:
        stored = ("running", "interrupted") if lively else (status,)
        where.append(f"status IN ({', '.join('?' * len(stored))})")
        params.extend(stored)
    parts = []
    if kind in (None, "run"):
        parts.append((_RUNS, where, params))
    if kind in (None, "batch", "batch-api"):
        extra = {"batch": [f"NOT {_VIA_API}"], "batch-api": [_VIA_API]}.get(kind or "", [])
        parts.append((_BATCHES, where + extra, params))
    sql = " UNION ALL ".join(
        base + (f" WHERE {' AND '.join(conds)}" if conds else "") for base, conds, _ in parts
    )
    sql += " ORDER BY 5 DESC, 1 DESC"
    args = [a for *_, p in parts for a in p]
    if limit is not None and not lively:
        sql += " LIMIT ? OFFSET ?"
        args += [limit, offset]
    rows = [_history_row(store, r) for r in store.read(sql, tuple(args))]
    if lively:
        rows = [r for r in rows if r.status == status]
        if limit is not None:
            rows = rows[offset : offset + limit]
    return rows


def get_item(store: RunStore, run_id: str) -> HistoryRow | None:
    """The history line of one run or batch (by its full id)."""
    rows = list_history(store, limit=1, ident=run_id)
    return rows[0] if rows else None


def _history_row(store: RunStore, row: tuple[Any, ...]) -> HistoryRow:
    rid, kind, workflow, status, started, ended, cost, pid, summary, path, error, note = row
    if status == "running" and not _alive(pid, rid):
        status = "interrupted"
    if note:
        cost = None  # a mock or unpriced run has no dollar figure, whatever the priced part was
    item = HistoryRow(
        rid, kind, workflow, status, started, ended, cost, path=path, error=error, cost_note=note
    )
    if kind != "run":
        _batch_totals(store, item, json.loads(summary) if summary else None)
    return item


def _batch_totals(store: RunStore, item: HistoryRow, summary: dict[str, Any] | None) -> None:
    """A batch's records and cost: from its summary once finished, else from its records."""
    if summary is not None and item.status != "running":
        cost = summary.get("cost") or {}
        item.records = summary.get("records")
        item.cost_note = "mock" if cost.get("mock") else None
        item.cost_note = item.cost_note or ("unpriced" if cost.get("unpriced_models") else None)
        item.cost_usd = (
            None
            if item.cost_note
            else (cost.get("total_usd") or 0.0) + (summary.get("earlier_cost_usd") or 0.0)
        )
        item.metrics = summary.get("metrics")
        return
    counts = batch_counts(store, item.id)
    item.records = counts["records"]
    item.cost_usd = counts["cost_usd"]


def batch_counts(store: RunStore, batch_id: str) -> dict[str, Any]:
    """Records by status and their cost (None when one is unpriced), from ``batch_records``."""
    rows = store.read(
        "SELECT status, COUNT(*), SUM(cost_usd), COUNT(*) - COUNT(cost_usd)"
        " FROM batch_records WHERE batch_id=? GROUP BY status",
        (batch_id,),
    )
    by_status = {status: n for status, n, _, _ in rows}
    unpriced = sum(u for *_, u in rows)
    cost = sum(c or 0.0 for _, _, c, _ in rows)
    return {
        "records": sum(by_status.values()),
        "by_status": by_status,
        "cost_usd": None if unpriced else cost,
        "unpriced_records": unpriced,
    }


def batch_records(
    store: RunStore, batch_id: str, *, offset: int = 0, limit: int = 50, status: str | None = None
) -> list[dict[str, Any]]:
    """One page of a batch's records (index order): index, line, status, cost, duration, error."""
    sql = (
        "SELECT record_index, line, status, cost_usd, duration_s, error FROM batch_records"
        " WHERE batch_id=? AND record_index >= ?"
    )
    params: list[Any] = [batch_id, offset]
    if status:
        sql += " AND status=?"
        params.append(status)
    rows = store.read(sql + " ORDER BY record_index LIMIT ?", (*params, limit))
    keys = ("index", "line", "status", "cost_usd", "duration_s", "error")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def batch_record(store: RunStore, batch_id: str, index: int) -> dict[str, Any]:
    """One record's outcome and its steps (with transcripts); ``UsageError`` if unknown."""
    rows = store.read(
        "SELECT record_index, line, status, cost_usd, duration_s, error, steps"
        " FROM batch_records WHERE batch_id=? AND record_index=?",
        (batch_id, index),
    )
    if not rows:
        raise UsageError(f"batch {batch_id} has no record {index} (records are numbered from 0)")
    index, line, status, cost, duration, error, steps = rows[0]
    return {
        "index": index,
        "line": line,
        "status": status,
        "cost_usd": cost,
        "duration_s": duration,
        "error": error,
        "steps": json.loads(steps),
    }


def step_transcript(store: RunStore, run_id: str, step_id: str) -> list[dict[str, Any]]:
    """A single run's step transcript; ``UsageError`` if the run has no such step."""
    rows = store.read(
        "SELECT transcript FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)
    )
    if not rows:
        raise UsageError(f"run {run_id} has no step '{step_id}'")
    return load_transcript(rows[0][0])


def find(store: RunStore, run_id: str) -> tuple[str, str]:
    """(kind of table: ``run`` or ``batch``, full id) of a run id or unique prefix."""
    for table, kind in (("runs", "run"), ("batches", "batch")):
        if store.read(f"SELECT 1 FROM {table} WHERE id=?", (run_id,)):
            return kind, run_id
    found = [
        (kind, rid)
        for table, kind in (("runs", "run"), ("batches", "batch"))
        for (rid,) in store.read(f"SELECT id FROM {table} WHERE id LIKE ? LIMIT 2", (f"{run_id}%",))
    ]
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise UsageError(f"'{run_id}' names more than one run; give more of the id")
    raise UnknownRun(run_id, store.path)


def _alive(pid: int | None, run_id: str) -> bool:
    if not pid:
        return False
    if pid == os.getpid():
        from flowrun.store.runs import _ACTIVE_RUNS

        return run_id in _ACTIVE_RUNS or run_id.startswith("batch-")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)
