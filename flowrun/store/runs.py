"""The SQLite run store (WAL mode) under ``FLOWRUN_HOME``: runs, step results, cache, threads.

Each step result is committed the moment the step completes, so a ``kill -9`` loses at most
the calls in flight. Nothing written here contains the API key (values pass ``redact``).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowrun.errors import StoreError as StoreError
from flowrun.errors import StoreLocked as StoreLocked
from flowrun.errors import UnknownRun
from flowrun.redaction import redact
from flowrun.results import RunResult, StepResult
from flowrun.store.sqlite import TIMEOUT_ENV as TIMEOUT_ENV
from flowrun.store.sqlite import Database, Row, utc_now
from flowrun.store.sqlite import store_error as store_error
from flowrun.store.transcripts import dump_transcript, load_transcript

# the run's cost so far: its steps, the finished items of foreach steps not yet finished, and
# what earlier attempts of steps run again by a resume paid
_UPDATE_COST = (
    "UPDATE runs SET cost_usd=earlier_cost_usd"
    " + (SELECT COALESCE(SUM(cost_usd), 0) FROM steps WHERE run_id=?1)"
    " + (SELECT COALESCE(SUM(cost_usd), 0) FROM step_items WHERE run_id=?1 AND step_id NOT IN"
    " (SELECT step_id FROM steps WHERE run_id=?1)) WHERE id=?2"
)
HOME_ENV = "FLOWRUN_HOME"
_ACTIVE_RUNS: set[str] = set()  # runs executing in this process (their rows say "running")


def flowrun_home() -> Path:
    """``$FLOWRUN_HOME``, else the per-user state directory."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    from platformdirs import user_state_dir

    return Path(user_state_dir("flowrun", appauthor=False))


def _dumps(value: Any) -> str:
    return redact(json.dumps(value, ensure_ascii=False, default=str))


@dataclass
class RunRow:
    id: str
    workflow_name: str
    workflow_path: str | None
    workflow_hash: str
    workflow_text: str
    inputs: dict[str, Any]
    status: str
    started_at: str
    ended_at: str | None
    cost_usd: float
    outputs: dict[str, Any] | None
    error: str | None
    failed_step: str | None
    options: dict[str, Any]
    pid: int | None = None
    #: why cost_usd is no dollar figure: "mock" or "unpriced" (None: it is the whole cost)
    cost_note: str | None = None
    #: the part of cost_usd paid for attempts of steps that a resume ran again
    earlier_cost_usd: float = 0.0

    @property
    def process_alive(self) -> bool:
        """Whether the process that runs this run still exists (on this machine)."""
        if not self.pid:
            return False
        if self.pid == os.getpid():
            return self.id in _ACTIVE_RUNS
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.id,
            "workflow": self.workflow_name,
            "path": self.workflow_path,
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "cost_usd": None if self.cost_note else round(self.cost_usd, 8),
            "cost_note": self.cost_note,
            "error": self.error,
        }


class RunStore:
    """Runs and their step results in one SQLite file (``runs.db`` under the home directory)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.db = Database(Path(path) if path else flowrun_home() / "runs.db")
        self.path = self.db.path

    def close(self) -> None:
        """Close the connection (do it: a connection left to the garbage collector keeps its locks)."""
        self.db.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        self.db.write(sql, params)

    def _transaction(self, *statements: tuple[str, tuple[Any, ...]]) -> None:
        """Run ``statements`` in one write transaction: all of them are committed, or none."""
        with self.db.transaction() as db:
            for sql, params in statements:
                db.execute(sql, params)

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        return self.db.read(sql, params)

    # --- runs -----------------------------------------------------------------------
    def start_run(
        self, run_id: str, wf: Any, inputs: dict[str, Any], options: dict[str, Any] | None = None
    ) -> None:
        self._write(
            "INSERT INTO runs (id, workflow_name, workflow_path, workflow_hash, workflow_text, inputs, status, started_at, options, pid)"
            " VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?)",
            (
                run_id,
                wf.name,
                str(wf.path.resolve()) if wf.path else None,
                wf.content_hash,
                redact(wf.text),
                _dumps(inputs),
                utc_now(),
                _dumps(options or {}),
                os.getpid(),
            ),
        )
        _ACTIVE_RUNS.add(run_id)

    def step_finished(self, run_id: str, result: StepResult) -> None:
        """Commit one step's result and the run's cost so far, in one transaction.

        Called the moment the step completes, so a killed run's row still shows what it paid.
        A succeeded step's foreach items (``item_finished``) are no longer needed: they go in
        the same transaction; a failed step's are kept for the resume.
        """
        forget_items = (
            [("DELETE FROM step_items WHERE run_id=? AND step_id=?", (run_id, result.id))]
            if result.status != "failed"
            else []
        )
        self._transaction(
            (
                "INSERT OR REPLACE INTO steps (run_id, step_id, status, cost_usd, record, finished_at, transcript) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    result.id,
                    result.status,
                    result.cost_usd,
                    _dumps(result.to_record()),
                    utc_now(),
                    dump_transcript(result.transcript) if result.transcript else None,
                ),
            ),
            *forget_items,
            (_UPDATE_COST, (run_id, run_id)),
            *_cost_note(run_id, result),
        )

    def item_finished(
        self, run_id: str, step_id: str, index: int, key: str, item: dict[str, Any]
    ) -> None:
        """Commit one finished foreach item (``item``: its output, calls, transcript...) the
        moment it completes, keyed by what it was computed from (``key``), with the run's cost
        so far; a resume of the run reuses it instead of asking again (``load_items``)."""
        cost = sum(c.get("cost_usd") or 0.0 for c in item.get("calls") or [])
        self._transaction(
            (  # an item stored before under another key was paid for, and is now replaced
                "UPDATE runs SET earlier_cost_usd=earlier_cost_usd + COALESCE((SELECT cost_usd"
                " FROM step_items WHERE run_id=?1 AND step_id=?2 AND item_index=?3"
                " AND item_key!=?4), 0) WHERE id=?1",
                (run_id, step_id, index, key),
            ),
            (
                "INSERT OR REPLACE INTO step_items (run_id, step_id, item_index, item_key, cost_usd, record, finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, step_id, index, key, cost, _dumps(item), utc_now()),
            ),
            (_UPDATE_COST, (run_id, run_id)),
        )

    def load_items(self, run_id: str, step_id: str) -> dict[int, tuple[str, dict[str, Any]]]:
        """The stored finished items of a foreach step: ``{index: (key, item)}``."""
        rows = self._read(
            "SELECT item_index, item_key, record FROM step_items WHERE run_id=? AND step_id=?",
            (run_id, step_id),
        )
        return {index: (key, json.loads(record)) for index, key, record in rows}

    def mark_resumed(self, run_id: str, rerun: list[str] = ()) -> float:
        """Mark a run running again; the stored rows of the steps it runs again (``rerun``:
        failed ones) go, their cost staying in the run's (``earlier_cost_usd``) except for
        their finished foreach items, which stay stored for the resume to reuse.
        Returns the run's cost so far: what the resume's budget starts from."""
        forget = []
        for step_id in rerun:
            forget += [
                (
                    "UPDATE runs SET earlier_cost_usd=earlier_cost_usd + COALESCE((SELECT"
                    " cost_usd FROM steps WHERE run_id=?1 AND step_id=?2), 0) - (SELECT"
                    " COALESCE(SUM(cost_usd), 0) FROM step_items WHERE run_id=?1 AND step_id=?2)"
                    " WHERE id=?1 AND EXISTS (SELECT 1 FROM steps WHERE run_id=?1 AND step_id=?2)",
                    (run_id, step_id),
                ),
                ("DELETE FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)),
            ]
        self._transaction(
            *forget,
            (_UPDATE_COST, (run_id, run_id)),
            (
                "UPDATE runs SET status='running', ended_at=NULL, error=NULL, failed_step=NULL, pid=? WHERE id=?",
                (os.getpid(), run_id),
            ),
        )
        _ACTIVE_RUNS.add(run_id)
        return self.get_run(run_id).cost_usd

    def finish_run(self, result: RunResult, status: str | None = None) -> None:
        _ACTIVE_RUNS.discard(result.run_id)
        self._transaction(
            (
                "UPDATE runs SET status=?, ended_at=?, outputs=?, error=?, failed_step=? WHERE id=?",
                (
                    status or result.status,
                    utc_now(),
                    _dumps(result.outputs),
                    redact(result.error or "") or None,
                    result.failed_step,
                    result.run_id,
                ),
            ),
            (_UPDATE_COST, (result.run_id, result.run_id)),
        )

    def save_metrics(self, owner: str, metrics: dict[str, Any], kind: str = "run") -> None:
        """Store what a run's (or a batch's: ``kind="batch"``) aggregate steps logged."""
        now = utc_now()
        self._transaction(
            *(
                (
                    "INSERT OR REPLACE INTO metrics (owner, kind, name, value, logged_at) VALUES (?, ?, ?, ?, ?)",
                    (owner, kind, name, _dumps(value), now),
                )
                for name, value in metrics.items()
            )
        )

    def metrics(self, owner: str) -> dict[str, Any]:
        """The metrics stored for a run or batch id, by name."""
        rows = self._read("SELECT name, value FROM metrics WHERE owner=? ORDER BY name", (owner,))
        return {name: json.loads(value) for name, value in rows}

    def mark_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Record that a run stopped early (a signal, an unexpected error), with its cost so far."""
        _ACTIVE_RUNS.discard(run_id)
        self._transaction(
            (
                "UPDATE runs SET status=?, ended_at=?, error=? WHERE id=?",
                (status, utc_now(), redact(error) if error else None, run_id),
            ),
            (_UPDATE_COST, (run_id, run_id)),
        )

    def get_run(self, run_id: str) -> RunRow:
        rows = self._read("SELECT * FROM runs WHERE id=?", (run_id,))
        if not rows:
            matches = self._read("SELECT id FROM runs WHERE id LIKE ? LIMIT 2", (f"{run_id}%",))
            if len(matches) == 1:
                return self.get_run(matches[0][0])
            raise UnknownRun(run_id, self.path)
        return _row(rows[0])

    def list_runs(self, limit: int = 20, status: str | None = None) -> list[RunRow]:
        """The newest runs first; ``status`` filters on what ``RunRow.status`` reports."""
        order = " ORDER BY started_at DESC, id DESC"
        if status is None:
            return [_row(r) for r in self._read(f"SELECT * FROM runs{order} LIMIT ?", (limit,))]
        # a "running" row whose process died reports "interrupted": filter after reading
        stored = ("running", "interrupted") if status in ("running", "interrupted") else (status,)
        rows = self._read(
            f"SELECT * FROM runs WHERE status IN ({', '.join('?' * len(stored))}){order}", stored
        )
        return [run for run in map(_row, rows) if run.status == status][:limit]

    def load_steps(self, run_id: str) -> dict[str, StepResult]:
        rows = self._read("SELECT record FROM steps WHERE run_id=? ORDER BY finished_at", (run_id,))
        return {r.id: r for r in (StepResult.from_record(json.loads(row[0])) for row in rows)}

    def load_transcript(self, run_id: str, step_id: str) -> list[dict[str, Any]]:
        """What the step's model calls sent and got (empty when transcripts were off)."""
        rows = self._read(
            "SELECT transcript FROM steps WHERE run_id=? AND step_id=?", (run_id, step_id)
        )
        return load_transcript(rows[0][0]) if rows else []

    def write_many(self, statements: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        """Each ``(sql, rows)`` as ``executemany``, all in one write transaction."""
        with self.db.transaction() as db:
            for sql, rows in statements:
                db.executemany(sql, rows)

    def read(self, sql: str, params: tuple[Any, ...] = ()) -> list[Row]:
        """Rows of a read-only query (the history and the viewer query through this)."""
        return self._read(sql, params)

    # --- response cache ------------------------------------------------------------------
    @staticmethod
    def cache_key(request: dict[str, Any]) -> str:
        """The request's hash, including the server it goes to (``OPENAI_BASE_URL``)."""
        keyed = {"base_url": os.environ.get("OPENAI_BASE_URL") or "", "request": request}
        return hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()

    def get(self, request: dict[str, Any]) -> dict[str, Any] | None:
        rows = self._read("SELECT reply FROM cache WHERE key=?", (self.cache_key(request),))
        return json.loads(rows[0][0]) if rows else None

    def put(self, request: dict[str, Any], reply: dict[str, Any]) -> None:
        self._write(
            "INSERT OR REPLACE INTO cache (key, model, reply, created_at) VALUES (?, ?, ?, ?)",
            (self.cache_key(request), request.get("model"), _dumps(reply), utc_now()),
        )

    # --- conversation threads -------------------------------------------------------------
    def thread_messages(self, thread: str) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT role, content FROM thread_messages WHERE thread=? ORDER BY seq", (thread,)
        )
        return [{"role": role, "content": json.loads(content)} for role, content in rows]

    def append_thread(
        self, thread: str, messages: list[dict[str, Any]], run_id: str | None
    ) -> None:
        with self.db.transaction() as db:
            (top,) = db.execute(
                "SELECT COALESCE(MAX(seq), 0) FROM thread_messages WHERE thread=?",
                (thread,),
            ).fetchone()
            for offset, m in enumerate(messages, start=1):
                db.execute(
                    "INSERT INTO thread_messages (thread, seq, role, content, run_id, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (thread, top + offset, m["role"], _dumps(m["content"]), run_id, utc_now()),
                )

    def list_threads(self) -> list[dict[str, Any]]:
        rows = self._read(
            "SELECT thread, COUNT(*), MAX(created_at) FROM thread_messages GROUP BY thread ORDER BY MAX(created_at) DESC"
        )
        return [{"thread": t, "messages": n, "updated_at": at} for t, n, at in rows]

    def clear_thread(self, thread: str) -> int:
        """Forget a thread's messages; returns how many there were."""
        return self.db.write("DELETE FROM thread_messages WHERE thread=?", (thread,))


def _cost_note(run_id: str, step: StepResult) -> list[tuple[str, tuple[Any, ...]]]:
    """The statement that marks the run's cost as no dollar figure, when this step makes it so:
    'mock' wins over 'unpriced' (a mock run's dollars are not unknown, there are none)."""
    if step.mock:
        return [("UPDATE runs SET cost_note='mock' WHERE id=?", (run_id,))]
    if not step.priced:
        return [("UPDATE runs SET cost_note=COALESCE(cost_note, 'unpriced') WHERE id=?", (run_id,))]
    return []


def _row(row: Row) -> RunRow:
    """A ``runs`` row (``SELECT *``), decoded by column name."""
    run = RunRow(
        row["id"],
        row["workflow_name"],
        row["workflow_path"],
        row["workflow_hash"],
        row["workflow_text"],
        json.loads(row["inputs"]),
        row["status"],
        row["started_at"],
        row["ended_at"],
        row["cost_usd"] or 0.0,
        json.loads(row["outputs"]) if row["outputs"] else None,
        row["error"],
        row["failed_step"],
        json.loads(row["options"] or "{}"),
        row["pid"],
        row["cost_note"],
        row["earlier_cost_usd"] or 0.0,
    )
    if run.status == "running" and not run.process_alive:
        run.status = "interrupted"  # its process died (kill -9, power cut) without saying so
    return run
