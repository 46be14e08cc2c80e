"""Batches overlap: a record's next step is submitted as soon as its own batch is collected,
whatever other batches are still running, so a run takes as many sequential turnarounds as
its DAG is deep. Asserted as order (the loopback server's log of creations and completions),
never as time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowrun.testing import LoopbackServer
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.test_batch_api import DIAMOND, read_lines, write_records

CHAIN = """\
version: 1
name: chain
inputs:
  text: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 60
steps:
  first:
    type: chat
    prompt: "first {{ inputs.text }}"
  second:
    type: chat
    prompt: "second {{ steps.first.output }}"
outputs:
  result: "{{ steps.second.output }}"
"""


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.03")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")


def created_with(server: LoopbackServer, prefix: str) -> str:
    batches = server.batch_api.batches
    return next(b.id for b in batches if any(c.startswith(prefix) for c in b.custom_ids))


def test_a_record_goes_on_while_an_unrelated_batch_is_still_running(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_LIMITS", "2")  # step 1: records 0-1, then 2-3
    # the batch of records 2-3 stays in progress until record 0's second step is submitted
    server.batch_api.hold(
        r"^r2\.first\.",
        until=lambda batches: any(
            c.startswith("r0.second.") for b in batches for c in b.custom_ids
        ),
    )
    # and the batch of records 0-1 until that one exists (under load its upload can be slower
    # than the whole first turnaround of records 0-1)
    server.batch_api.hold(
        r"^r0\.first\.",
        until=lambda batches: any(c.startswith("r2.first.") for b in batches for c in b.custom_ids),
    )
    wf = make_flow(tmp_path, CHAIN)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(4)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output
    assert [x["outputs"]["result"] for x in read_lines(out)] == [
        f"echo: second echo: first ticket {i}" for i in range(4)
    ]
    slow = created_with(server, "r2.first.")
    follow_up = created_with(server, "r0.second.")
    events = server.batch_api.events
    # record 0's second step was created before the unrelated first-step batch completed
    assert events.index(("created", slow)) < events.index(("created", follow_up))
    assert events.index(("created", follow_up)) < events.index(("completed", slow))
    # and nothing was asked twice
    submitted = server.batch_api.submitted_custom_ids()
    assert len(submitted) == len(set(submitted)) == 8


def test_every_record_goes_out_at_once_and_turnarounds_equal_the_depth(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No window of records: the first step of every record is in the first round (split
    into files within the limits), the join of every record in the second."""
    monkeypatch.setenv("FLOWRUN_BATCH_LIMITS", "150")
    # no first-step batch completes before all 600 first-step requests are submitted (a
    # window of records would never get there: the hold would give up, the order be wrong)
    server.batch_api.hold(
        r"\.(a|b)\.",
        until=lambda batches: sum(len(b.custom_ids) for b in batches) >= 600,
        at_most=180,  # only a safety valve: a loaded machine may take long to submit 600
    )
    wf = make_flow(tmp_path, DIAMOND)
    rows = [{"text": f"ticket {i}"} for i in range(300)]
    records = write_records(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api", "--json")
    assert result.code == 0, result.output
    assert len(read_lines(out)) == 300
    batches = server.batch_api.batches
    waves = {b.id: int((b.metadata or {})["flowrun_wave"]) for b in batches}
    first = [b for b in batches if waves[b.id] == 1]
    assert sum(len(b.custom_ids) for b in first) == 600 and len(first) == 4  # a and b
    # two sequential turnarounds, the depth of the diamond: no record has a batch created
    # after another of its batches completed after a third of them. (A round label can be 3:
    # the records of a first-step file that completes later park their joins in a later
    # round, alongside, not behind, the second round.)
    events = server.batch_api.events
    assert max(_turnarounds(batches, events).values()) == 2
    first_done = min(i for i, (what, _) in enumerate(events) if what == "completed")
    assert all(events.index(("created", b.id)) < first_done for b in first)
    assert json.loads(result.stdout)["succeeded"] == 300


def test_the_enqueued_token_limit_keeps_files_waiting(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With room for about one file of a model, the next file is created only after the
    previous batch ended, and no file is over the limit."""
    monkeypatch.setenv("FLOWRUN_BATCH_QUEUE_TOKENS", "400")
    wf = make_flow(tmp_path, CHAIN)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"ticket {i}"} for i in range(12)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert result.code == 0, result.output
    assert {x["status"] for x in read_lines(out)} == {"succeeded"}
    files = [server.batch_api.files[b.input_file_id] for b in server.batch_api.batches]
    assert len(files) > 2
    assert all(len(f.data) // 4 <= 400 + len(f.data.splitlines()) for f in files)
    # at most one batch in flight at a time: each creation follows the previous one's end
    in_flight = 0
    for what, _ in server.batch_api.events:
        in_flight += 1 if what == "created" else -1
        assert in_flight <= 1


def _turnarounds(batches: list[Any], events: list[tuple[str, str]]) -> dict[str, int]:
    """For each record (``r17`` of a custom_id), the longest chain of its batches in which
    each was created after the one before it completed: its sequential turnarounds."""
    created = {b.id: events.index(("created", b.id)) for b in batches}
    completed = {b.id: events.index(("completed", b.id)) for b in batches}
    by_record: dict[str, list[str]] = {}
    for b in batches:
        for record in {cid.split(".", 1)[0] for cid in b.custom_ids}:
            by_record.setdefault(record, []).append(b.id)
    chains = {}
    for record, ids in by_record.items():
        longest: dict[str, int] = {}
        for bid in sorted(ids, key=created.__getitem__):
            before = [longest[o] for o in longest if completed[o] < created[bid]]
            longest[bid] = 1 + max(before, default=0)
        chains[record] = max(longest.values())
    return chains
