"""What a Batch API run leaves in the run store: request rows and result lines go once their
records are written (succeeded); those of failed records stay for the resume."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from flowrun.store.migrations import MIGRATIONS
from flowrun.testing import LoopbackServer
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.run_helpers import query, store_path
from tests.test_batch_api import DIAMOND, read_lines, write_records


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.05")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def request_rows(run_id: str) -> list[str]:
    return [
        r[0] for r in query("SELECT custom_id FROM batch_api_requests WHERE run_id=?", (run_id,))
    ]


def failed_batch(server: LoopbackServer, tmp_path: Path, records: int, bad: int) -> str:
    """A Batch API run of the diamond over ``records`` records in which record ``bad``'s
    step b fails (its output in ``tmp_path/out.jsonl``); its run id."""
    server.batch_api.fail(match=f"keywords ticket {bad}", status=400)
    wf = make_flow(tmp_path, DIAMOND)
    rows = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(records)])
    result = flowrun("run", wf, "--batch", rows, "--output", tmp_path / "out.jsonl",
                     "--via", "batch-api", "--json")  # fmt: skip
    assert result.code == 1
    return str(json.loads(result.stdout)["batch_id"])


def test_request_rows_go_once_their_records_are_written(
    server: LoopbackServer, tmp_path: Path
) -> None:
    run_id = failed_batch(server, tmp_path, 12, bad=3)
    out = tmp_path / "out.jsonl"
    assert [x["status"] for x in read_lines(out)].count("failed") == 1
    # only record 3's requests (and results) are kept, for its resume
    left = request_rows(run_id)
    assert left and {cid.split(".")[0] for cid in left} == {"r3"}
    assert query("SELECT COUNT(*) FROM batch_api_files WHERE run_id=?", (run_id,))[0][0] == 2

    again = flowrun("resume", run_id)
    assert again.code == 0, again.output
    assert request_rows(run_id) == []  # complete: nothing left to resume
    assert {x["status"] for x in read_lines(out)} == {"succeeded"}


def back_to_schema_13(db: sqlite3.Connection) -> None:
    """Turn the Batch API tables back into those of schema 13: each result line in its
    request's row (migration 14 moved them to a table of their own)."""
    db.executescript(
        """
        BEGIN;
        CREATE TABLE old_requests (run_id TEXT NOT NULL, custom_id TEXT NOT NULL,
            file_id TEXT NOT NULL, result TEXT, PRIMARY KEY (run_id, custom_id));
        INSERT INTO old_requests SELECT q.run_id, q.custom_id, q.file_id, s.result
            FROM batch_api_requests q LEFT JOIN batch_api_results s
            USING (run_id, record, custom_id);
        DROP TABLE batch_api_requests;
        DROP TABLE batch_api_results;
        ALTER TABLE old_requests RENAME TO batch_api_requests;
        DELETE FROM _migrations WHERE id = 14;
        COMMIT;
        """
    )


def test_a_run_stopped_before_the_upgrade_resumes_after_it_without_paying_again(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """Migration 14 moves the stored result lines to their own table: a Batch API run that
    failed under schema 13 resumes after the upgrade and asks no answered request again."""
    run_id = failed_batch(server, tmp_path, 6, bad=3)
    out = tmp_path / "out.jsonl"
    kept = request_rows(run_id)
    with sqlite3.connect(store_path(), isolation_level=None) as db:
        back_to_schema_13(db)
    stored = query("SELECT custom_id FROM batch_api_requests WHERE result IS NOT NULL")
    assert sorted(r[0] for r in stored) == sorted(kept)  # record 3's a and b answered

    again = flowrun("resume", run_id)
    assert again.code == 0, again.output
    assert query("SELECT MAX(id) FROM _migrations") == [(len(MIGRATIONS),)]
    asked = [cid for b in server.batch_api.batches for cid in b.custom_ids]
    assert sum(cid.startswith("r3.a.") for cid in asked) == 1  # answered before the upgrade
    assert sum(cid.startswith("r3.b.") for cid in asked) == 2  # failed: asked again
    assert [x["status"] for x in read_lines(out)] == ["succeeded"] * 6
    assert request_rows(run_id) == []
    assert query("SELECT COUNT(*) FROM batch_api_results") == [(0,)]


def test_prune_deletes_the_requests_and_results_a_failed_run_kept(
    server: LoopbackServer, tmp_path: Path
) -> None:
    run_id = failed_batch(server, tmp_path, 3, bad=1)
    assert request_rows(run_id)
    assert query("SELECT COUNT(*) FROM batch_api_results WHERE run_id=?", (run_id,)) == [(2,)]
    res = flowrun("runs", "prune", "--keep", "0", "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["deleted_batches"] == 1
    assert request_rows(run_id) == []
    assert query("SELECT COUNT(*) FROM batch_api_results") == [(0,)]


PREFIXES = """\
version: 1
name: prefixes
inputs:
  text: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 60
steps:
  s:
    type: chat
    prompt: "one {{ inputs.text }}"
  s2:
    type: chat
    prompt: "two {{ steps.s.output }}"
  s2x:
    type: chat
    foreach: "{{ ['x', 'y'] }}"
    prompt: "item {{ item }} {{ steps.s2.output }}"
  s3:
    type: chat
    prompt: "three {{ steps.s2x.output | join(',') }}"
outputs:
  result: "{{ steps.s3.output }}"
"""


def test_records_woken_again_read_only_the_answers_of_steps_they_have_not_completed(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A record woken again is not given back the answers of the steps it completed (its
    chunk's stored requests are read without them); step ids that begin alike (s, s2, s2x
    and its items) still each get their own answer, and nothing is asked twice."""
    wf = make_flow(tmp_path, PREFIXES)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(5)])
    outputs = {}
    for via in ("live", "batch-api"):
        server.reset()
        out = tmp_path / f"{via}.jsonl"
        res = flowrun("run", wf, "--batch", records, "--output", out, "--via", via)
        assert res.code == 0, res.output
        outputs[via] = [x["outputs"] for x in read_lines(out)]
    assert outputs["batch-api"] == outputs["live"]
    assert outputs["live"][0] == {"result": "echo: three echo: item x echo: two echo: one t0,"
                                            "echo: item y echo: two echo: one t0"}  # fmt: skip
    asked = [cid for b in server.batch_api.batches for cid in b.custom_ids]
    assert len(asked) == len(set(asked)) == 5 * 5  # s, s2, two items, s3: once each
    assert len(server.batch_api.batches) == 4  # one round per depth
