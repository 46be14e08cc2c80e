"""Ctrl-C / SIGTERM while a Batch API wave is being submitted: the records waiting for the
batch are pending, not failed; the summary says so, and the resume submits and collects them."""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from flowrun.testing import LoopbackServer
from tests.helpers import flowrun
from tests.run_helpers import wait_for
from tests.test_batch_api_durability import (
    RECORDS,
    assert_complete,
    assert_nothing_submitted_twice,
    start_batch,
    start_waiting_for_joins,
)


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.02,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_the_wave_is_submitted_leaves_its_records_pending(
    server: LoopbackServer, tmp_path: Path, sig: signal.Signals
) -> None:
    server.batch_api.create_latency = 5  # the batch exists; its id has not come back yet
    proc, out = start_batch(tmp_path)
    try:
        wait_for(lambda: server.batch_api.batches, what="the first batch")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 1, err
    assert re.search(rf": 0 succeeded, 0 failed, {RECORDS} pending in ", err), err
    assert (
        f"error: interrupted; finished records are in the output; {RECORDS} pending records" in err
    )
    resume = re.search(r"hint: continue with: (flowrun resume (batch-\S+)) \(requests already "
                       r"submitted are collected, not sent again\)", err)  # fmt: skip
    assert resume, err
    assert "Traceback" not in err

    server.batch_api.create_latency = 0
    result = flowrun("resume", resume.group(2), "--json")
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["succeeded"], doc["failed"], doc["pending"]) == (RECORDS, 0, 0)
    assert_nothing_submitted_twice(server)  # the batch made before the signal was found
    assert_complete(out)


def test_the_signal_lands_inside_the_upload(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM raises KeyboardInterrupt wherever the process is: here, inside the task that
    uploads the wave's file. Its records are pending, not failed by 'the batch loop failed'."""
    from flowrun.batch.batch_api.transport import BatchTransport
    from tests.flow_files import make_flow
    from tests.test_batch_api import DIAMOND, write_records

    real_upload = BatchTransport.upload

    async def interrupted(self, filename, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(BatchTransport, "upload", interrupted)
    wf = make_flow(tmp_path, DIAMOND)
    rows = [{"text": f"ticket {i}"} for i in range(RECORDS)]
    records = write_records(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api", "--json")
    assert res.code == 1, res.stderr
    doc = json.loads(res.stdout)
    assert (doc["status"], doc["failed"], doc["pending"]) == ("interrupted", 0, RECORDS)
    assert "the batch loop failed" not in res.stderr

    monkeypatch.setattr(BatchTransport, "upload", real_upload)
    again = flowrun("resume", doc["batch_id"])
    assert again.code == 0, again.output
    assert_nothing_submitted_twice(server)
    assert_complete(out)


def test_a_signal_while_records_wait_for_their_join_keeps_their_completed_steps(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """SIGINT while every record waits for its join's batch (a and b done, kept pickled by
    the process, not in the store): stopping stores them, so the resume gives them back as
    the first run's. It asks for nothing again and counts only the joins' calls as its own
    (run again from their stored answers, a and b would count twice)."""
    proc, out, released = start_waiting_for_joins(server, tmp_path)
    try:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        released.set()
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 1, err
    assert re.search(rf": 0 succeeded, 0 failed, {RECORDS} pending in ", err), err
    run_id = server.batch_api.batches[0].metadata["flowrun_run_id"]

    result = flowrun("resume", run_id, "--json")
    assert result.code == 0, result.output
    doc = json.loads(result.stdout)
    assert (doc["succeeded"], doc["failed"], doc["pending"]) == (RECORDS, 0, 0)
    assert doc["cost"]["calls"] == RECORDS  # the joins: a and b are the first run's
    assert_nothing_submitted_twice(server)
    assert_complete(out)
    record = json.loads(flowrun("runs", "show", run_id, "--record", "5", "--json").stdout)
    sent = record["steps"]["a"]["transcript"][0]["request"]["messages"][-1]["content"]
    assert sent == "summarize ticket 5"
