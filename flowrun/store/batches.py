"""Batches in the run store: one row per batch, and the completed steps of unfinished records.

A record's line in the output file is the durable result of a finished record. Until that
line is written, the record's completed steps (paid for) live here, so a record that fails,
waits in the reorder buffer, or is cut off by a crash does not pay for them again on resume.

A step that made a model call (paid for) is committed the moment it completes
(``add_step(..., commit=True)``), with whatever else is buffered: ``kill -9`` loses no answered
call. Other writes are batched: steps that called no model (tools: nothing paid, cheap to run
again), finished records and deletions are committed together every ``FLUSH_EVERY_S`` seconds
(and on every exit but ``kill -9``); the rows of a record are deleted once its line says it
succeeded. So a batch of quick tool-only records costs almost no store writes. The finished
items of a ``foreach`` step are kept the same way (``add_item``), until their record is done.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowrun.errors import UsageError
from flowrun.json_text import json_encoder
from flowrun.redaction import redact
from flowrun.results import StepResult
from flowrun.store.runs import flowrun_home
from flowrun.store.sqlite import BATCH_CHECKPOINT_PAGES, Database, Row, utc_now
from flowrun.store.transcripts import dump_transcript

FLUSH_EVERY_S = 0.2
KEPT_STATUSES = ("succeeded", "skipped")  # steps a later run of the record can reuse


def _alive(pid: int | None) -> bool:
    if not pid or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class BatchRow:
    id: str
    workflow_name: str
    workflow_path: str | None
    workflow_hash: str
    workflow_text: str
    records_path: str | None
    output_path: str | None
    options: dict[str, Any]
    status: str
    started_at: str
    ended_at: str | None
    summary: dict[str, Any] | None
    pid: int | None

    @property
    def running_elsewhere(self) -> bool:
        """Another live process is running this batch now."""
        return self.status == "running" and _alive(self.pid)


class BatchStore:
    """The ``batches`` and ``batch_steps`` tables of ``runs.db`` (own connection, WAL)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else flowrun_home() / "runs.db"
        self._pending: dict[tuple[str, int], list[StepResult]] = {}
        self._flushed: set[tuple[str, int]] = set()
        self._deletes: list[tuple[str, int]] = []
        self._records: list[tuple[Any, ...]] = []  # finished records' rows, for the history
        self._items: list[tuple[Any, ...]] = []  # finished foreach items' rows
        self.db = Database(self.path, checkpoint_pages=BATCH_CHECKPOINT_PAGES)

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> BatchStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str, params: Any = (), many: bool = False) -> list[Row]:
        if many:
            self.db.write_many(sql, params)
            return []
        return self.db.read(sql, params)

    # --- batches ------------------------------------------------------------------------
    def create(
        self,
        batch_id: str,
        wf: Any,
        records_path: str | None,
        output_path: str | None,
        options: dict[str, Any],
    ) -> None:
        self._run(
            "INSERT INTO batches (id, workflow_name, workflow_path, workflow_hash, workflow_text,"
            " records_path, output_path, options, status, started_at, pid)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running', ?, ?)",
            (
                batch_id,
                wf.name,
                str(wf.path.resolve()) if wf.path else None,
                wf.content_hash,
                wf.text,
                records_path,
                output_path,
                redact(json.dumps(options, default=str)),
                utc_now(),
                os.getpid(),
            ),
        )

    def restart(
        self, batch_id: str, wf: Any, records_path: str | None, options: dict[str, Any]
    ) -> None:
        """A resumed batch runs again (with the current workflow text, records and options)."""
        self._run(
            "UPDATE batches SET status='running', ended_at=NULL, pid=?, options=?,"
            " workflow_hash=?, workflow_text=?, records_path=? WHERE id=?",
            (
                os.getpid(),
                redact(json.dumps(options, default=str)),
                wf.content_hash,
                wf.text,
                records_path,
                batch_id,
            ),
        )

    def finish(self, batch_id: str, status: str, summary: dict[str, Any]) -> None:
        self.flush()
        self._run(
            "UPDATE batches SET status=?, ended_at=?, summary=? WHERE id=?",
            (status, utc_now(), redact(json.dumps(summary, default=str)), batch_id),
        )

    def save_metrics(self, batch_id: str, metrics: dict[str, Any]) -> None:
        """Store what the batch's aggregate steps logged (table ``metrics``, kind ``batch``)."""
        now = utc_now()
        rows = [
            (batch_id, "batch", name, redact(json.dumps(value, default=str)), now)
            for name, value in metrics.items()
        ]
        self._run(
            "INSERT OR REPLACE INTO metrics (owner, kind, name, value, logged_at) VALUES (?, ?, ?, ?, ?)",
            rows,
            many=True,
        )

    def get(self, batch_id: str) -> BatchRow:
        rows = self._run("SELECT * FROM batches WHERE id=?", (batch_id,))
        if not rows:
            rows = self._run("SELECT * FROM batches WHERE id LIKE ? LIMIT 2", (f"{batch_id}%",))
            if len(rows) != 1:
                raise UsageError(f"no batch '{batch_id}' in {self.path}")
        return _row(rows[0])

    def latest_for_output(self, output_path: str) -> BatchRow | None:
        rows = self._run(
            "SELECT * FROM batches WHERE output_path=? ORDER BY started_at DESC LIMIT 1",
            (output_path,),
        )
        return _row(rows[0]) if rows else None

    # --- completed steps of unfinished records ---------------------------------------------
    def add_step(
        self, batch_id: str, index: int, result: StepResult, *, commit: bool = False
    ) -> None:
        """Keep a completed step of a record: committed now with ``commit`` (a step that was
        paid for), else by the next ``flush``."""
        if result.status in KEPT_STATUSES:
            self._pending.setdefault((batch_id, index), []).append(result)
            if commit:
                self.flush()

    def add_item(
        self,
        batch_id: str,
        index: int,
        step_id: str,
        item_index: int,
        key: str,
        item: dict[str, Any],
        *,
        commit: bool = False,
    ) -> None:
        """Keep a finished foreach item of a record (``key``: what it was computed from):
        committed now with ``commit`` (it was paid for), else by the next ``flush``."""
        record = redact(_STEP(item))
        self._items.append((batch_id, index, step_id, item_index, key, record))
        self._pending.setdefault((batch_id, index), [])
        if commit:
            self.flush()

    def load_items(
        self, batch_id: str, index: int, step_id: str
    ) -> dict[int, tuple[str, dict[str, Any]]]:
        """The stored finished items of a record's foreach step: ``{item: (key, item)}``."""
        if (batch_id, index) not in self._flushed:  # none stored for this record
            return {}
        rows = self._run(
            "SELECT item_index, item_key, record FROM batch_items"
            " WHERE batch_id=? AND record_index=? AND step_id=?",
            (batch_id, index, step_id),
        )
        return {row[0]: (row[1], json.loads(row[2])) for row in rows}

    def forget(self, batch_id: str, index: int) -> None:
        """The record succeeded and its line is written: its steps are no longer needed."""
        key = (batch_id, index)
        self._pending.pop(key, None)
        if key in self._flushed:
            self._flushed.discard(key)
            self._deletes.append(key)

    def record_done(self, batch_id: str, result: Any) -> None:
        """Keep a finished record's outcome and steps (with transcripts), for ``runs show``.

        Buffered like the steps, and committed by the next ``flush``.
        """
        self._records.append(record_row(batch_id, result))

    def flush(self) -> None:
        """Commit buffered steps, finished records and deletions in one transaction."""
        if not self._pending and not self._deletes and not self._records and not self._items:
            return
        rows = [
            (
                bid,
                index,
                r.id,
                r.cost_usd,
                redact(_STEP(r.to_record())),
                _redacted(_dumped(r)),
            )
            for (bid, index), results in self._pending.items()
            for r in results
        ]
        deletes, records, items = self._deletes, self._records, self._items
        with self.db.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO batch_items (batch_id, record_index, step_id,"
                " item_index, item_key, record) VALUES (?, ?, ?, ?, ?, ?)",
                items,
            )
            db.executemany(
                "INSERT OR REPLACE INTO batch_steps (batch_id, record_index, step_id, cost_usd,"
                " record, transcript) VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )
            db.executemany("DELETE FROM batch_steps WHERE batch_id=? AND record_index=?", deletes)
            db.executemany("DELETE FROM batch_items WHERE batch_id=? AND record_index=?", deletes)
            db.executemany(
                "INSERT OR REPLACE INTO batch_records (batch_id, record_index, status,"
                " cost_usd, duration_s, line, error, steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                records,
            )
        self._flushed.update(self._pending)
        self._pending = {}
        self._deletes = []
        self._records = []
        self._items = []

    def stored_records(self, batch_id: str) -> set[int]:
        """Indices of records with stored steps (from earlier runs of the batch)."""
        rows = self._run(
            "SELECT record_index FROM batch_steps WHERE batch_id=?1 UNION"
            " SELECT record_index FROM batch_items WHERE batch_id=?1",
            (batch_id,),
        )
        found = {r[0] for r in rows}
        self._flushed.update((batch_id, i) for i in found)
        return found

    def load_steps(self, batch_id: str, index: int) -> dict[str, StepResult]:
        rows = self._run(
            "SELECT record, transcript FROM batch_steps WHERE batch_id=? AND record_index=?",
            (batch_id, index),
        )
        results = (_stored_step(record, transcript) for record, transcript in rows)
        return {r.id: r for r in results}

    def drop_steps(self, batch_id: str, index: int, step_ids: set[str]) -> None:
        """Delete some stored steps of a record (stale ones: the workflow changed since)."""
        self.flush()
        self._run(
            "DELETE FROM batch_steps WHERE batch_id=? AND record_index=? AND step_id=?",
            [(batch_id, index, sid) for sid in step_ids],
            many=True,
        )

    def succeeded_steps(self, batch_id: str) -> dict[int, dict[str, dict[str, Any]]]:
        """Each succeeded record's steps, as ``--json`` shows them, by record index."""
        rows = self._run(
            "SELECT record_index, steps FROM batch_records WHERE batch_id=? AND status='succeeded'",
            (batch_id,),
        )
        return {row[0]: json.loads(row[1]) for row in rows}

    def drop_records(self, batch_id: str, indices: list[int]) -> None:
        """Delete the stored steps of records that are already done."""
        for index in indices:
            self.forget(batch_id, index)


def record_row(batch_id: str, result: Any) -> tuple[Any, ...]:
    """A ``batch_records`` row for a ``BatchResult``: its steps as ``--json`` shows them.

    A step's transcript is added as the (capped, redacted) JSON the run store keeps.
    """
    parts: list[str] = []  # (the row's text in pieces, joined once)
    for sid, step in result.steps.items():
        text = _HISTORY(step.to_json())
        transcript = _dumped(step)
        if transcript:  # (added as the last field of the step's text)
            parts += (", ", _KEY(sid), ": ", text[:-1], ', "transcript": ', transcript, "}")
        else:
            parts += (", ", _KEY(sid), ": ", text)
    parts[:1] = ["{"]  # (in place of the first step's ", ")
    parts.append("}")
    return (
        batch_id,
        result.index,
        result.status,
        result.cost_usd,
        round(result.duration_s, 4),
        result.line,
        redact(result.error) if result.error else None,
        redact("".join(parts)),
    )


def _dumped(step: StepResult) -> str | None:
    """The step's transcript as the store keeps it, dumped once (a step's row and its record's
    history hold the same text); None without one (``--no-transcripts``, a tool step). Not
    redacted here: the step's row redacts it, and the history row redacts its whole text."""
    if step.stored_transcript is None and step.transcript:
        step.stored_transcript = dump_transcript(step.transcript, redacted=False)
    return step.stored_transcript


def keep_transcript_dumped(step: StepResult) -> None:
    """Keep the step's transcript only as the store keeps it (one string, as for a step read
    back from the store), for a step that waits as bytes: a third smaller and faster to keep,
    and dumped once whichever row writes it."""
    if _dumped(step) is not None:
        step.transcript = []


def _redacted(text: str | None) -> str | None:
    return redact(text) if text else text


def _stored_step(record: str, transcript: str | None) -> StepResult:
    """A completed step read back from ``batch_steps``, its transcript as stored."""
    result = StepResult.from_record(json.loads(record))
    result.stored_transcript = transcript
    return result


# one encoder each for the per-step rows (json.dumps with arguments builds one per call)
_STEP = json_encoder(default=str)  # json.dumps(..., default=str)
_HISTORY = json_encoder(ensure_ascii=False, default=str)
_KEY = json.encoder.encode_basestring_ascii  # json.dumps(key) of a str key


def _row(row: tuple[Any, ...]) -> BatchRow:
    (
        bid,
        name,
        path,
        whash,
        text,
        records,
        output,
        options,
        status,
        started,
        ended,
        summary,
        pid,
    ) = row
    return BatchRow(
        bid,
        name,
        path,
        whash,
        text,
        records,
        output,
        json.loads(options or "{}"),
        status,
        started,
        ended,
        json.loads(summary) if summary else None,
        pid,
    )
