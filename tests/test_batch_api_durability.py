"""Batch API runs survive kill -9 and can be cancelled: no request is ever submitted twice.

The loopback server runs in the test process, so it outlives the killed ``flowrun``.
"""

from __future__ import annotations

import json
import re
import signal
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flowrun.testing import LoopbackServer
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.run_helpers import start_flowrun, wait_for
from tests.test_batch_api import DIAMOND, read_lines, write_records

RECORDS = 40


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.02,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def start_batch(tmp_path: Path) -> tuple[object, Path]:
    wf = make_flow(tmp_path, DIAMOND)
    rows = [{"text": f"ticket {i}"} for i in range(RECORDS)]
    records = write_records(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    proc = start_flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    return proc, out


def start_waiting_for_joins(
    server: LoopbackServer, tmp_path: Path
) -> tuple[Any, Path, threading.Event]:
    """A batch run whose joins' batches are held in progress, once every record waits for
    its join (a and b done): the process, its output file, and the event that lets the joins'
    batches complete."""
    released = threading.Event()
    server.batch_api.hold(r"\.join\.", until=lambda batches: released.is_set(), at_most=120)
    proc, out = start_batch(tmp_path)

    def joins() -> int:
        return sum(".join." in c for c in server.batch_api.submitted_custom_ids())

    try:
        wait_for(lambda: joins() == RECORDS, what="every record's join in a batch")
    except BaseException:
        released.set()
        proc.kill()
        proc.communicate(timeout=10)
        raise
    return proc, out, released


def run_id_of(server: LoopbackServer) -> str:
    return server.batch_api.batches[0].metadata["flowrun_run_id"]


def assert_nothing_submitted_twice(server: LoopbackServer) -> None:
    ids = server.batch_api.submitted_custom_ids()
    twice = [cid for cid, n in Counter(ids).items() if n > 1]
    assert twice == []
    uploads = [f for f in server.batch_api.files.values() if f.purpose == "batch"]
    uploaded = [json.loads(x)["custom_id"] for f in uploads for x in f.data.splitlines()]
    assert sorted(uploaded) == sorted(ids)  # every upload became exactly one batch


def assert_complete(out: Path) -> None:
    lines = read_lines(out)
    assert [x["index"] for x in lines] == list(range(RECORDS))
    assert {x["status"] for x in lines} == {"succeeded"}
    assert (
        lines[5]["outputs"]["result"]
        == "echo: combine echo: summarize ticket 5 | echo: keywords ticket 5"
    )


def test_kill_9_while_polling_then_resume(server: LoopbackServer, tmp_path: Path) -> None:
    server.batch_api.completion_delay = 3600  # completes only when the test says so
    proc, out = start_batch(tmp_path)
    try:
        wait_for(lambda: server.batch_api.batches, what="the first batch")
        wait_for(lambda: len(server.requests_to("/batches/" + server.batch_api.batches[0].id)) >= 2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)

    assert proc.returncode == -signal.SIGKILL
    assert (
        len(server.batch_api.batches) == 1 and server.batch_api.batches[0].status == "in_progress"
    )

    listing = flowrun("batches", "list", "--run", run_id_of(server))  # asks the API
    batch = server.batch_api.batches[0]
    assert re.search(
        rf"{batch.id}\s+chat/completions\s+gpt-4o-mini\s+{batch.status}", listing.stdout
    )

    server.batch_api.completion_delay = 0
    result = flowrun("resume", run_id_of(server))
    assert result.code == 0, result.output
    assert_nothing_submitted_twice(server)
    assert [len(b.custom_ids) for b in server.batch_api.batches] == [2 * RECORDS, RECORDS]
    assert_complete(out)

    listing = flowrun("batches", "list", "--json")
    rows = json.loads(listing.stdout)
    assert [(r["wave"], r["status"], r["request_counts"]["completed"]) for r in rows] == [
        (2, "completed", RECORDS),
        (1, "completed", 2 * RECORDS),
    ]


def kill_while_the_create_answers(server: LoopbackServer, tmp_path: Path) -> Path:
    """kill -9 a batch run once its first batch exists, before the batch id came back;
    returns the run's output file."""
    server.batch_api.create_latency = 30
    proc, out = start_batch(tmp_path)
    try:
        wait_for(lambda: server.batch_api.batches, what="the first batch")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    return out


def test_kill_9_before_the_batch_id_came_back(server: LoopbackServer, tmp_path: Path) -> None:
    """The batch was created but the answer never arrived: resume finds it by its input file."""
    out = kill_while_the_create_answers(server, tmp_path)
    server.batch_api.create_latency = 0
    result = flowrun("resume", run_id_of(server))
    assert result.code == 0, result.output
    assert_nothing_submitted_twice(server)
    assert len(server.batch_api.batches) == 2
    # the killed process created wave 1; resume listed the batches, found it, created wave 2
    assert [r.method for r in server.requests_to("/batches")] == ["POST", "GET", "POST"]
    assert_complete(out)


def test_a_create_answered_500_is_found_not_made_twice(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """The batch was created but the answer was a 500: flowrun looks for it before trying again."""
    server.batch_api.fail_after_create = 1
    proc, out = start_batch(tmp_path)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert_nothing_submitted_twice(server)
    assert len(server.batch_api.batches) == 2  # wave 1 (found after the 500) and wave 2
    assert [r.method for r in server.requests_to("/batches")] == ["POST", "GET", "POST"]
    assert_complete(out)


def test_cancel_then_resume(server: LoopbackServer, tmp_path: Path) -> None:
    server.batch_api.completion_delay = 60
    proc, out = start_batch(tmp_path)
    try:
        wait_for(lambda: server.batch_api.batches, what="the first batch")
        run_id = run_id_of(server)
        batch_id = server.batch_api.batches[0].id
        wait_for(lambda: batch_id in flowrun("batches", "list", "--no-refresh").stdout)
        cancelled = flowrun("batches", "cancel", run_id[:20])
        assert cancelled.code == 0, cancelled.output
        # the running process sees the cancel mark on its next poll and may cancel first
        assert re.search(rf"{batch_id}: cancell(ing|ed)\n", cancelled.stdout)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, stderr
    assert f"{RECORDS} of {RECORDS} records failed" in stderr
    assert len(server.batch_api.batches) == 1  # cancelled requests are not retried
    assert "the run was cancelled" in read_lines(out)[0]["error"]
    listing = flowrun("batches", "list", "--run", run_id)
    assert "cancelled" in listing.stdout and run_id in listing.stdout

    server.batch_api.completion_delay = 0
    result = flowrun("resume", run_id)
    assert result.code == 0, result.output
    assert_nothing_submitted_twice(server)
    assert {c.rsplit(".", 1)[1] for c in server.batch_api.batches[1].custom_ids} == {"a1"}
    assert_complete(out)


def test_cancel_unknown_run(server: LoopbackServer) -> None:
    result = flowrun("batches", "cancel", "batch-nope")
    assert result.code == 2
    assert "no Batch API batches for run 'batch-nope'" in result.stderr
    assert flowrun("batches", "list").stdout.startswith("no batches yet")


def test_kill_9_while_records_wait_for_their_join_then_resume(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """kill -9 while every record waits for its join's batch: the steps they completed (a
    and b) were only kept by the killed process, not stored; their answers were. The resume
    runs a and b again from those answers, asking for nothing again, and counts them as its
    own calls: the killed process reported none of them."""
    proc, out, released = start_waiting_for_joins(server, tmp_path)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    released.set()

    result = flowrun("resume", run_id_of(server), "--json")
    assert result.code == 0, result.output
    assert_nothing_submitted_twice(server)
    assert_complete(out)
    assert json.loads(result.stdout)["cost"]["calls"] == 3 * RECORDS
    record = json.loads(
        flowrun("runs", "show", run_id_of(server), "--record", "5", "--json").stdout
    )
    sent = record["steps"]["b"]["transcript"][0]["request"]["messages"][-1]["content"]
    assert sent == "keywords ticket 5"
