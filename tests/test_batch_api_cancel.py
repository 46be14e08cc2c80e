"""Cancelling a Batch API run reaches every batch: one whose id was never stored (the process
died while create was answering), one created while the cancel came, one being polled."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowrun.store.batch_api_state import BatchState
from flowrun.testing import LoopbackServer
from tests.helpers import flowrun
from tests.run_helpers import wait_for
from tests.test_batch_api import read_lines
from tests.test_batch_api_durability import (
    RECORDS,
    kill_while_the_create_answers,
    run_id_of,
    start_batch,
)


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.02,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def test_cancel_finds_a_batch_whose_id_was_never_stored(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.batch_api.completion_delay = 60
    kill_while_the_create_answers(server, tmp_path)
    run_id, batch = run_id_of(server), server.batch_api.batches[0]

    cancelled = flowrun("batches", "cancel", run_id)
    assert cancelled.code == 0, cancelled.output
    assert f"{batch.id}: cancelling" in cancelled.stdout
    assert f"run {run_id}: 1 batch(es) cancelled" in cancelled.stdout
    assert batch.status == "cancelling"
    listing = flowrun("batches", "list", "--run", run_id)
    assert batch.id in listing.stdout and "cancelled" in listing.stdout


def test_list_finds_a_batch_whose_id_was_never_stored(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.batch_api.completion_delay = 60
    kill_while_the_create_answers(server, tmp_path)
    listing = flowrun("batches", "list", "--run", run_id_of(server))
    assert listing.code == 0, listing.output
    assert server.batch_api.batches[0].id in listing.stdout and "in_progress" in listing.stdout


def _cancelled_run(server: LoopbackServer, proc) -> str:
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1, stderr
    assert f"{RECORDS} of {RECORDS} records failed" in stderr
    assert [b.status for b in server.batch_api.batches] == ["cancelled"]
    assert server.batch_api.requests == []  # no line of it was processed (or paid)
    return stderr


def test_a_cancel_that_came_while_the_batch_was_created_cancels_it(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.batch_api.completion_delay = 60
    server.batch_api.create_latency = 1.0
    proc, out = start_batch(tmp_path)
    try:
        wait_for(lambda: server.batch_api.batches, what="the first batch")
        # the cancel command ran before the batch existed: it could only set the mark
        with BatchState() as state:
            state.request_cancel(run_id_of(server))
        _cancelled_run(server, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "the run was cancelled" in read_lines(out)[0]["error"]


def test_a_cancel_mark_seen_while_polling_cancels_the_batches(
    server: LoopbackServer, tmp_path: Path
) -> None:
    server.batch_api.completion_delay = 60
    proc, _ = start_batch(tmp_path)
    try:
        wait_for(lambda: server.batch_api.batches, what="the first batch")
        batch = server.batch_api.batches[0]
        wait_for(lambda: len(server.requests_to(f"/batches/{batch.id}")) >= 2, what="polls")
        with BatchState() as state:  # a cancel that could not reach the API itself
            state.request_cancel(run_id_of(server))
        _cancelled_run(server, proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
