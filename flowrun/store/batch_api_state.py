"""What a Batch API run keeps in the run store, so a crash never loses or repeats a request.

Every input file is recorded (with the custom_ids it holds) *before* its batch is created,
and the batch id right after; downloaded results are stored by custom_id before any record
sees them. On resume a request whose result is stored is answered from here, and one that
sits in a submitted batch waits for that batch: no request is ever submitted twice.

Tables (created by migrations ``m005_batch_api`` and ``m014_batch_api_results`` in
``flowrun/store/migrations.py``): ``batch_api_files`` (one row per uploaded input file and its
batch), ``batch_api_requests`` (custom_id -> file), ``batch_api_results`` (custom_id -> the
result line, once downloaded), ``batch_api_runs`` (cancel flag). Requests and results are
keyed by run, record index and custom_id, so a range of records is read or deleted at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from flowrun.redaction import redact_each
from flowrun.store.runs import RunStore, flowrun_home
from flowrun.store.sqlite import BATCH_CHECKPOINT_PAGES, Database, Row, utc_now

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})


@dataclass
class FileRow:
    """One uploaded input file and what became of its batch."""

    file_id: str
    run_id: str
    wave: int
    endpoint: str
    model: str
    requests: int
    bytes: int
    batch_id: str | None
    status: (
        str  # uploaded, then the batch's status: validating ... completed/failed/expired/cancelled
    )
    completed: int
    failed: int
    error: str | None
    submitted_at: str
    updated_at: str
    collected: bool = False  # its results are downloaded and stored

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def submitted_ts(self) -> float:
        """``submitted_at`` as unix seconds."""
        return datetime.fromisoformat(self.submitted_at).timestamp()

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "wave": self.wave,
            "batch_id": self.batch_id,
            "input_file_id": self.file_id,
            "endpoint": self.endpoint,
            "model": self.model,
            "status": self.status,
            "request_counts": {
                "total": self.requests,
                "completed": self.completed,
                "failed": self.failed,
            },
            "bytes": self.bytes,
            "error": self.error,
            "submitted_at": self.submitted_at,
            "updated_at": self.updated_at,
            "collected": self.collected,
        }


class BatchState:
    """The Batch API tables of the run store (its own connection to the same SQLite file)."""

    def __init__(self, store: RunStore | str | Path | None = None) -> None:
        if isinstance(store, RunStore):
            path = store.path
        else:
            path = Path(store) if store else flowrun_home() / "runs.db"
        # (creates the file and applies every migration)
        self.db = Database(path, checkpoint_pages=BATCH_CHECKPOINT_PAGES)
        self.path = self.db.path

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> BatchState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        return self.db.read(sql, params)

    # --- runs ------------------------------------------------------------------------
    def cancel_requested(self, run_id: str) -> bool:
        rows = self._run("SELECT cancel_requested FROM batch_api_runs WHERE run_id=?", (run_id,))
        return bool(rows and rows[0][0])

    def request_cancel(self, run_id: str) -> None:
        self._run(
            "INSERT INTO batch_api_runs (run_id, cancel_requested, created_at) VALUES (?, 1, ?)"
            " ON CONFLICT(run_id) DO UPDATE SET cancel_requested=1",
            (run_id, utc_now()),
        )

    def clear_cancel(self, run_id: str) -> None:
        self._run("UPDATE batch_api_runs SET cancel_requested=0 WHERE run_id=?", (run_id,))

    # --- files and requests ----------------------------------------------------------
    def file_uploaded(
        self,
        run_id: str,
        wave: int,
        file_id: str,
        endpoint: str,
        model: str,
        custom_ids: list[str],
        size: int,
    ) -> None:
        """Record an uploaded file and its custom_ids in one transaction (before any batch)."""
        now = utc_now()
        with self.db.transaction() as db:
            db.execute(
                "INSERT INTO batch_api_files (file_id, run_id, wave, endpoint, model, requests, bytes,"
                " status, completed, failed, submitted_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'uploaded', 0, 0, ?, ?)",
                (file_id, run_id, wave, endpoint, model, len(custom_ids), size, now, now),
            )
            db.executemany(
                "INSERT INTO batch_api_requests (run_id, record, custom_id, file_id)"
                " VALUES (?, ?, ?, ?)",
                sorted([(run_id, record_of(cid), cid, file_id) for cid in custom_ids]),
            )

    def batch_status(
        self,
        file_id: str,
        status: str,
        *,
        batch_id: str | None = None,
        completed: int | None = None,
        failed: int | None = None,
        error: str | None = None,
    ) -> None:
        self._run(
            "UPDATE batch_api_files SET status=?, batch_id=COALESCE(?, batch_id),"
            " completed=COALESCE(?, completed), failed=COALESCE(?, failed),"
            " error=COALESCE(?, error), updated_at=? WHERE file_id=?",
            (status, batch_id, completed, failed, error, utc_now(), file_id),
        )

    def results_stored(self, run_id: str, results: list[tuple[str, str]]) -> None:
        """Store result lines by custom_id (in one transaction), in key order: each B-tree
        page of the key is touched once, where the output file's shuffled order made every
        insert a random page access. A line stored again (a file collected again after a
        crash) replaces the one before. The API key is redacted from each line (a reply or an
        error that echoes it), as from everything else the store keeps."""
        lines = redact_each([line for _, line in results])
        rows = [
            (run_id, record_of(c), c, line) for (c, _), line in zip(results, lines, strict=True)
        ]
        with self.db.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO batch_api_results (run_id, record, custom_id, result)"
                " VALUES (?, ?, ?, ?)",
                sorted(rows),
            )

    def file_collected(self, file_id: str) -> None:
        """Every request of the file has its result stored."""
        self._run(
            "UPDATE batch_api_files SET collected=1, updated_at=? WHERE file_id=?",
            (utc_now(), file_id),
        )

    def has_requests(self, run_id: str) -> bool:
        """Whether an earlier process of the run left requests (a resume)."""
        return bool(self._run("SELECT 1 FROM batch_api_requests WHERE run_id=? LIMIT 1", (run_id,)))

    def requests_of(
        self, run_id: str, indices: Iterable[int], skip: Collection[str] = ()
    ) -> dict[int, dict[str, tuple[str, str | None]]]:
        """The stored requests of these records: record -> custom_id -> (file_id, result line
        or None while its batch is in flight). One indexed range read per run of consecutive
        records (a chunk of records woken by one batch is usually one run). The requests of
        the steps in ``skip`` (steps every one of these records has completed: they are not
        asked again) are not read, nor their result lines."""
        found: dict[int, dict[str, tuple[str, str | None]]] = {}
        labels = sorted(skip)
        # a request's custom_id is r{record}.{label}.{digest}.a{attempt}; a foreach item's
        # label is step[item]
        unasked = "".join(
            " AND substr(q.custom_id, length(q.record) + 3, ?) NOT IN (?, ?)" for _ in labels
        )
        sql = (
            "SELECT q.record, q.custom_id, q.file_id, s.result FROM batch_api_requests q"
            " LEFT JOIN batch_api_results s ON s.run_id=q.run_id AND s.record=q.record"
            f" AND s.custom_id=q.custom_id WHERE q.run_id=? AND q.record BETWEEN ? AND ?{unasked}"
        )
        unasked_params = [p for label in labels for p in (len(label) + 1, label + ".", label + "[")]
        wanted = set(indices)
        for first, last in spans(wanted):
            for index, cid, fid, result in self._run(sql, (run_id, first, last, *unasked_params)):
                if index in wanted:
                    found.setdefault(index, {})[cid] = (fid, result)
        return found

    def open_files(self, run_id: str) -> list[str]:
        """Files of the run whose batch exists and whose results are not all stored yet."""
        rows = self._run(
            "SELECT file_id FROM batch_api_files WHERE run_id=? AND batch_id IS NOT NULL"
            " AND collected=0 ORDER BY submitted_at, file_id",
            (run_id,),
        )
        return [r[0] for r in rows]

    def file_requests(self, run_id: str, file_id: str) -> list[str]:
        rows = self._run(
            "SELECT custom_id FROM batch_api_requests WHERE run_id=? AND file_id=?",
            (run_id, file_id),
        )
        return [r[0] for r in rows]

    def forget_records(self, run_id: str, indices: Iterable[int]) -> None:
        """Delete the requests and results of records whose output line is written (their
        completed steps need no result any more; like ``BatchStore.forget``): one statement
        per table and run of consecutive records."""
        ranges = [(run_id, first, last) for first, last in spans(indices)]
        with self.db.transaction() as db:
            for table in ("batch_api_requests", "batch_api_results"):
                db.executemany(
                    f"DELETE FROM {table} WHERE run_id=? AND record BETWEEN ? AND ?", ranges
                )

    def forget_run(self, run_id: str) -> None:
        """Delete every request and result of a run whose records are all written and
        succeeded (its files stay, for ``flowrun batches list``)."""
        with self.db.transaction() as db:
            db.execute("DELETE FROM batch_api_requests WHERE run_id=?", (run_id,))
            db.execute("DELETE FROM batch_api_results WHERE run_id=?", (run_id,))

    def file(self, file_id: str) -> FileRow | None:
        rows = self._run(f"SELECT {_FILE_COLUMNS} FROM batch_api_files WHERE file_id=?", (file_id,))
        return FileRow(*rows[0]) if rows else None

    def files(self, run_id: str | None = None, *, limit: int = 100) -> list[FileRow]:
        """Files (and their batches) newest first, of one run or of all."""
        where, params = ("WHERE run_id LIKE ?", (f"{run_id}%", limit)) if run_id else ("", (limit,))
        rows = self._run(
            f"SELECT {_FILE_COLUMNS} FROM batch_api_files {where}"
            " ORDER BY submitted_at DESC, file_id DESC LIMIT ?",
            params,
        )
        return [FileRow(*r) for r in rows]


def record_of(cid: str) -> int:
    """The record index a ``custom_id`` names (``r17.classify...`` -> 17)."""
    return int(cid[1 : cid.index(".")])


def spans(indices: Iterable[int]) -> list[tuple[int, int]]:
    """Record indices as runs of consecutive ones, ``(first, last)``, in order."""
    runs: list[tuple[int, int]] = []
    for index in sorted(set(indices)):
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


_FILE_COLUMNS = (
    "file_id, run_id, wave, endpoint, model, requests, bytes, batch_id, status, completed,"
    " failed, error, submitted_at, updated_at, collected"
)
