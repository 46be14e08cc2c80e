"""The run store: written as steps complete, WAL mode, `runs list/show`, corrupt and locked files."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading

import pytest

from flowrun.store.migrations import MIGRATIONS
from flowrun.store.runs import RunStore, StoreError
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import (
    TWO_STEPS,
    only_run_id,
    query,
    start_flowrun,
    step_rows,
    store_path,
    wait_for,
    write,
)
from tests.test_batch_api_store import back_to_schema_13


def test_first_step_is_in_the_file_while_the_second_is_in_flight(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    server.add(Reply(content="slow answer", latency=1.5), match="second after")
    proc = start_flowrun("run", wf, "--json")
    try:
        # the second request has arrived, so the first step has completed
        wait_for(lambda: len(server.requests) == 2, what="the second request")
        rows = wait_for(step_rows, what="the first step's row")
        assert rows == {"first": "succeeded"}
        assert query("SELECT status FROM runs") == [("running",)]
        assert proc.poll() is None, "the run should still be in flight"
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert json.loads(out)["outputs"]["b"] == "slow answer"
    assert step_rows() == {"first": "succeeded", "second": "succeeded"}


def test_store_is_in_wal_mode_and_records_the_run(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    res = flowrun("run", wf, "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert query("PRAGMA journal_mode") == [("wal",)]
    [(rid, path, whash, status, started, ended, cost)] = query(
        "SELECT id, workflow_path, workflow_hash, status, started_at, ended_at, cost_usd FROM runs"
    )
    assert rid == doc["run_id"]
    assert path == str(wf.resolve())
    assert whash == hashlib.sha256(wf.read_bytes()).hexdigest()
    assert status == "succeeded" and started <= ended
    assert cost == pytest.approx(doc["cost"]["total_usd"]) and cost > 0


def test_runs_list_and_show(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    ids = [json.loads(flowrun("run", wf, "--json").stdout)["run_id"] for _ in range(3)]

    listed = flowrun("runs", "list", "--json")
    assert listed.code == 0
    assert [r["run_id"] for r in json.loads(listed.stdout)] == ids[::-1]
    limited = json.loads(flowrun("runs", "list", "--limit", "2", "--json").stdout)
    assert [r["run_id"] for r in limited] == ids[:0:-1]
    text = flowrun("runs", "list").stdout
    assert all(i in text for i in ids) and "two-steps" in text and "succeeded" in text

    shown = flowrun("runs", "show", ids[0], "--json")
    assert shown.code == 0
    doc = json.loads(shown.stdout)
    assert doc["status"] == "succeeded"
    assert doc["outputs"] == {"a": "echo: first step", "b": "echo: second after echo: first step"}
    assert set(doc["steps"]) == {"first", "second"}
    assert doc["steps"]["first"]["output"] == "echo: first step"
    assert doc["cost_usd"] == pytest.approx(sum(s["cost_usd"] for s in doc["steps"].values()))
    assert doc["cost_usd"] > 0
    human = flowrun("runs", "show", ids[0]).stdout
    assert "first" in human and "second" in human and "echo: first step" in human


def test_runs_show_lists_a_failed_steps_error(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    server.add(Reply(status=400, error="bad things"), match="second after")
    res = flowrun("run", wf, "--json")
    assert res.code == 1
    doc = json.loads(flowrun("runs", "show", only_run_id(), "--json").stdout)
    assert doc["status"] == "failed"
    assert doc["failed_step"] == "second"
    assert "bad things" in doc["steps"]["second"]["error"]
    assert "bad things" in flowrun("runs", "show", only_run_id()).stdout


def test_unknown_run_id_is_exit_2(tmp_path):
    for args in (("runs", "show", "nope"), ("resume", "nope")):
        res = flowrun(*args)
        assert res.code == 2
        assert "no run 'nope'" in res.stderr


def test_empty_store_lists_nothing():
    res = flowrun("runs", "list")
    assert res.code == 0 and "no runs yet" in res.stdout
    assert json.loads(flowrun("runs", "list", "--json").stdout) == []


def _one_error_line(res) -> str:
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    return lines[0]


def test_corrupted_store_is_one_clear_line(server, tmp_path):
    store_path().parent.mkdir(parents=True, exist_ok=True)
    store_path().write_bytes(b"this is not a database at all " * 200)
    for args in (("runs", "list"), ("run", write(tmp_path, TWO_STEPS))):
        res = flowrun(*args)
        assert res.code == 1
        line = _one_error_line(res)
        assert "corrupted" in line and str(store_path()) in line
    assert server.requests == []


def test_locked_store_is_one_clear_line(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWRUN_STORE_TIMEOUT", "0.2")
    assert flowrun("runs", "list").code == 0  # creates the store
    holder = sqlite3.connect(store_path(), isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        for args in (("runs", "list"), ("run", write(tmp_path, TWO_STEPS))):
            res = flowrun(*args)
            assert res.code == 1
            assert "is locked by another process" in _one_error_line(res)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert server.requests == []


def test_opening_a_new_store_at_once_from_many_connections(tmp_path):
    """Two cron jobs starting together on a new FLOWRUN_HOME must not trip over the schema."""
    failures = []
    for trial in range(5):
        path = tmp_path / f"home{trial}" / "runs.db"
        barrier = threading.Barrier(8)

        def open_store(path=path, barrier=barrier):
            barrier.wait()
            try:
                RunStore(path).close()
            except StoreError as exc:
                failures.append(str(exc))

        threads = [threading.Thread(target=open_store) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with RunStore(path) as store:
            assert store.list_runs() == []
    assert failures == []


def test_a_failing_migration_leaves_the_schema_as_it_was(monkeypatch):
    def broken(db):
        db.executescript("CREATE TABLE half_done (x); CREATE TABLE nonsense (;")

    monkeypatch.setattr("flowrun.store.migrations.MIGRATIONS", [*MIGRATIONS, broken])
    res = flowrun("runs", "list")
    assert res.code == 1
    assert "Traceback" not in res.stderr
    assert query("SELECT name FROM sqlite_master WHERE name IN ('half_done', 'runs')") == []


def test_a_batch_stopped_before_an_upgrade_resumes_after_it_without_paying_again(server, tmp_path):
    """Migration 13 rebuilds the batch tables: the completed steps of a batch that failed
    under the schema before it are still reused, and its records' history still shown."""
    wf = write(tmp_path, TWO_STEPS)
    records = tmp_path / "in.jsonl"
    records.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    server.add(Reply(status=400, error="not now"), match="second after", times=3)
    assert flowrun("run", wf, "--batch", records, "-o", out).code == 1
    with sqlite3.connect(store_path(), isolation_level=None) as db:  # back to schema 12
        back_to_schema_13(db)
        db.executescript(
            """
            BEGIN;
            CREATE TABLE old_steps (batch_id TEXT NOT NULL REFERENCES batches(id)
                ON DELETE CASCADE, record_index INTEGER NOT NULL, step_id TEXT NOT NULL,
                cost_usd REAL NOT NULL DEFAULT 0, record TEXT NOT NULL,
                PRIMARY KEY (batch_id, record_index, step_id)) WITHOUT ROWID;
            INSERT INTO old_steps SELECT batch_id, record_index, step_id, cost_usd, record
                FROM batch_steps;
            DROP TABLE batch_steps;
            ALTER TABLE old_steps RENAME TO batch_steps;
            DELETE FROM _migrations WHERE id = 13;
            COMMIT;
            """
        )
    assert query("SELECT COUNT(*) FROM batch_steps") == [(3,)]  # each record's first step
    res = flowrun("run", wf, "--batch", records, "-o", out, "--resume", "--json")
    assert res.code == 0, res.stderr
    asked = [r for r in server.requests if '"content":"first step"' in r.text]
    assert len(asked) == 3  # once per record, before the upgrade
    assert query("SELECT MAX(id) FROM _migrations") == [(len(MIGRATIONS),)]
    [(schema,)] = query("SELECT sql FROM sqlite_master WHERE name='batch_steps'")
    assert "WITHOUT ROWID" not in schema and "transcript" in schema
    batch = json.loads(res.stdout)["batch_id"]
    record = json.loads(flowrun("runs", "show", batch, "--record", "0", "--json").stdout)
    assert set(record["steps"]) == {"first", "second"}
    assert record["steps"]["second"]["transcript"]


class _LockOnRequest:
    """A responder that takes the run store's write lock (BEGIN IMMEDIATE) as the call arrives."""

    def __init__(self, hold_s: float | None) -> None:
        self.hold_s = hold_s
        self.holder: sqlite3.Connection | None = None

    def __call__(self, req):
        self.holder = sqlite3.connect(store_path(), isolation_level=None, check_same_thread=False)
        self.holder.execute("BEGIN IMMEDIATE")
        if self.hold_s is not None:
            threading.Timer(self.hold_s, self.release).start()
        return Reply(content="the paid answer")

    def release(self) -> None:
        if self.holder is not None:
            self.holder.execute("ROLLBACK")
            self.holder.close()
            self.holder = None


ONE_STEP = """\
version: 1
name: one
steps:
  s: {type: chat, model: gpt-4o-mini, prompt: "answer me", max_completion_tokens: 20}
outputs:
  out: "{{ steps.s.output }}"
"""


def test_a_step_result_waits_for_a_locked_store_and_is_saved_when_it_is_released(server, tmp_path):
    server.add(_LockOnRequest(hold_s=5))
    proc = start_flowrun(
        "run", write(tmp_path, ONE_STEP), "--json", env={"FLOWRUN_STORE_TIMEOUT": "1"}
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    doc = json.loads(out)
    assert doc["outputs"] == {"out": "the paid answer"}
    assert "warnings" not in doc
    assert step_rows() == {"s": "succeeded"}
    [(status, cost)] = query("SELECT status, cost_usd FROM runs")
    assert status == "succeeded" and cost == pytest.approx(doc["cost"]["total_usd"]) and cost > 0
    assert len(server.requests) == 1


def test_a_store_locked_for_too_long_still_reports_the_paid_result(server, tmp_path, monkeypatch):
    from flowrun import load_workflow, run_workflow
    from flowrun.engine import executor

    monkeypatch.setenv("FLOWRUN_STORE_TIMEOUT", "0.1")
    monkeypatch.setattr(executor, "WRITE_PATIENCE_S", 0.5)
    lock = _LockOnRequest(hold_s=None)
    server.add(lock)
    try:
        result = run_workflow(load_workflow(write(tmp_path, ONE_STEP)))
    finally:
        lock.release()
    assert result.status == "succeeded"
    assert result.outputs == {"out": "the paid answer"}
    assert result.warnings[0].startswith(
        "step(s) 's' could not be saved in the run store (still locked after 0.5s: the run store "
    )
    assert result.warnings[0].endswith(
        "their results are only in this output, and a resume would run them again"
    )
    assert result.warnings[1].startswith("the run could not be marked finished in the run store")
    assert step_rows() == {}
