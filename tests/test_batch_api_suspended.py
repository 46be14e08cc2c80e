"""A record waiting for a batch holds nothing that runs: no task, no coroutine, no future.
Its requests are in the run store and its completed steps wait as bytes (on disk past a few
MB) until its batch is collected, and it then runs again. Asserted by counting the event loop's tasks while every batch is held in
progress by the loopback server (never by time)."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from pathlib import Path

import pytest

from flowrun.testing import LoopbackServer, RecordedRequest, Reply
from tests.flow_files import make_flow
from tests.helpers import flowrun
from tests.test_batch_api import DIAMOND, read_lines, write_records

RECORDS = 300


@pytest.fixture(autouse=True)
def _fast_polling(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.03")
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")
    monkeypatch.setenv("FLOWRUN_BATCH_LIMITS", "100")  # 6 first-round files


def test_records_waiting_for_a_batch_hold_no_task(server: LoopbackServer, tmp_path: Path) -> None:
    from flowrun.batch import arun_batch

    released = threading.Event()
    # every first-round batch stays in progress until the test has looked
    server.batch_api.hold(r"\.(a|b)\.", until=lambda batches: released.is_set(), at_most=120)
    wf = make_flow(tmp_path, DIAMOND)
    rows = [{"text": f"ticket {i}"} for i in range(RECORDS)]

    async def submitted() -> int:
        while len(server.batch_api.submitted_custom_ids()) < 2 * RECORDS:
            await asyncio.sleep(0.01)
        return len(server.batch_api.batches)

    async def scenario() -> tuple[int, int, list]:
        results = []

        async def consume() -> None:
            async for result in arun_batch(wf, rows, via="batch-api"):
                results.append(result)

        run = asyncio.create_task(consume())
        files = await submitted()
        # every record asked for its first steps and is waiting for a batch held in progress
        tasks = len(asyncio.all_tasks())
        released.set()
        await run
        return files, tasks, results

    files, tasks, results = asyncio.run(scenario())
    assert files == 6
    # the run's own tasks (the wave loop, the progress ticker, one follower per batch, this
    # test's), none per waiting record
    assert tasks <= files + 10, f"{tasks} tasks while {RECORDS} records waited"
    assert [r.index for r in results] == list(range(RECORDS)) and all(r.ok for r in results)
    assert results[7].outputs["result"] == (
        "echo: combine echo: summarize ticket 7 | echo: keywords ticket 7"
    )


def test_a_suspended_record_gets_its_completed_steps_back(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """The join of each record runs after its first-round batch is collected, with the
    outputs of a and b it completed before it waited; nothing is asked twice."""
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(RECORDS)])
    out = tmp_path / "out.jsonl"
    result = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api", "--json")
    assert result.code == 0, result.output
    lines = read_lines(out)
    assert [x["outputs"]["result"] for x in lines] == [
        f"echo: combine echo: summarize t{i} | echo: keywords t{i}" for i in range(RECORDS)
    ]
    submitted = server.batch_api.submitted_custom_ids()
    assert len(submitted) == len(set(submitted)) == 3 * RECORDS
    # the calls made before a record was suspended are counted once, with those after
    cost = json.loads(result.stdout)["cost"]
    assert cost["calls"] == 3 * RECORDS
    assert cost["total_usd"] == pytest.approx(sum(x["cost_usd"] for x in lines), rel=1e-3)


def test_a_resume_after_a_step_changed_never_reads_its_old_result_back(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """Records failed at the join keep a and b in the store. The resume runs an edited b:
    a record suspended for the new b runs again with a only (the old b was dropped from the
    store when it first ran), so its join reads the new b's answer."""
    server.batch_api.fail(match="combine", status=400, times=None)
    wf = make_flow(tmp_path, DIAMOND)
    records = write_records(tmp_path / "in.jsonl", [{"text": f"t{i}"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    first = flowrun("run", wf, "--batch", records, "--output", out, "--via", "batch-api")
    assert first.code == 1
    assert {x["status"] for x in read_lines(out)} == {"failed"}
    with server._lock:
        server.batch_api._failures.clear()  # the join answers now
    wf.write_text(wf.read_text().replace("keywords {{", "tags {{"), encoding="utf-8")
    before = len(server.batch_api.submitted_custom_ids())
    again = flowrun(
        "run", wf, "--batch", records, "--output", out, "--via", "batch-api", "--resume"
    )
    assert again.code == 0, again.output
    assert [x["outputs"]["result"] for x in read_lines(out)] == [
        f"echo: combine echo: summarize t{i} | echo: tags t{i}" for i in range(5)
    ]
    asked = server.batch_api.submitted_custom_ids()[before:]
    # the resume asked for the new b and the joins, never a again
    assert sorted(c.split(".")[1] for c in asked) == ["b"] * 5 + ["join"] * 5


@pytest.mark.parametrize("via", ["cli", "python"])
def test_records_finished_behind_a_late_one_wait_on_disk_and_come_back_whole(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """Record 0's first request fails and is asked again a round later: the 39 records after
    it finish meanwhile. Past IN_MEMORY (5 here) they wait pickled in a temporary file, and
    each comes back whole (outputs, steps, transcripts) when its turn comes."""
    from flowrun.batch.batch_api import held_results

    monkeypatch.setattr(held_results, "IN_MEMORY", 5)
    went: list[int] = []
    keep = held_results.HeldResults.keep

    def counting(self, result, waiting):  # type: ignore[no-untyped-def]
        kept = keep(self, result, waiting)
        if isinstance(kept, held_results.OnDisk):
            went.append(result.index)
        return kept

    monkeypatch.setattr(held_results.HeldResults, "keep", counting)
    server.batch_api.fail(match="summarize ticket 0", status=500)
    wf = make_flow(tmp_path, DIAMOND)
    rows = [{"text": f"ticket {i}"} for i in range(40)]
    if via == "cli":
        out = tmp_path / "out.jsonl"
        res = flowrun(
            "run",
            wf,
            "--batch",
            write_records(tmp_path / "in.jsonl", rows),
            "-o",
            out,
            "--via",
            "batch-api",
            "--json",
        )
        assert res.code == 0, res.stderr
        lines = read_lines(out)
        outputs = [x["outputs"]["result"] for x in lines]
        batch = json.loads(res.stdout)["batch_id"]
        record = json.loads(flowrun("runs", "show", batch, "--record", "39", "--json").stdout)
        sent = record["steps"]["a"]["transcript"][0]["request"]["messages"][-1]["content"]
    else:
        from flowrun.batch import run_batch

        results = list(run_batch(wf, rows, via="batch-api"))
        assert [r.index for r in results] == list(range(40))
        outputs = [r.outputs["result"] for r in results]
        sent = results[39].steps["a"].transcript[0]["request"]["messages"][-1]["content"]
    assert outputs == [
        f"echo: combine echo: summarize ticket {i} | echo: keywords ticket {i}" for i in range(40)
    ]
    assert sent == "summarize ticket 39"
    assert len(server.batch_api.batches) == 3  # record 0 took one more round
    assert len(went) >= 30 and 0 not in went  # the late record itself never waits


@pytest.mark.parametrize("via", ["cli", "python"])
def test_completed_steps_past_the_memory_limit_wait_on_disk_and_come_back_whole(
    server: LoopbackServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, via: str
) -> None:
    """With no room in memory (IN_MEMORY_BYTES 0), every record's a and b wait in the
    temporary file while its join is asked, and come back whole: the join reads their
    outputs, the history and the Python API's results show what a sent."""
    from flowrun.batch.batch_api import held_results, waiting_steps

    monkeypatch.setattr(waiting_steps, "IN_MEMORY_BYTES", 0)
    spilled: list[str] = []
    put = held_results.SpillFile.put

    def counting(self, data):  # type: ignore[no-untyped-def]
        spilled.append(self.prefix)
        return put(self, data)

    monkeypatch.setattr(held_results.SpillFile, "put", counting)
    wf = make_flow(tmp_path, DIAMOND)
    rows = [{"text": f"ticket {i}"} for i in range(20)]
    if via == "cli":
        out = tmp_path / "out.jsonl"
        records = write_records(tmp_path / "in.jsonl", rows)
        res = flowrun("run", wf, "--batch", records, "-o", out, "--via", "batch-api", "--json")
        assert res.code == 0, res.stderr
        outputs = [x["outputs"]["result"] for x in read_lines(out)]
        batch = json.loads(res.stdout)["batch_id"]
        record = json.loads(flowrun("runs", "show", batch, "--record", "13", "--json").stdout)
        sent = record["steps"]["a"]["transcript"][0]["request"]["messages"][-1]["content"]
    else:
        from flowrun.batch import run_batch

        results = list(run_batch(wf, rows, via="batch-api"))
        outputs = [r.outputs["result"] for r in results]
        sent = results[13].steps["a"].transcript[0]["request"]["messages"][-1]["content"]
    assert outputs == [
        f"echo: combine echo: summarize ticket {i} | echo: keywords ticket {i}" for i in range(20)
    ]
    assert sent == "summarize ticket 13"
    assert spilled.count("flowrun-steps-") == 20  # each record's a and b, once
    assert len(server.batch_api.submitted_custom_ids()) == 3 * 20  # nothing asked twice


def test_records_that_never_wait_cost_no_task(server: LoopbackServer, tmp_path: Path) -> None:
    """Every step of the diamond is a model step, answered from a collected batch or parked:
    each of a record's three runs ends (or is suspended) without waiting, in the runner's
    task. Counted with the loop's task factory: a few tasks for the whole run (the wave loop,
    the ticker, one follower per batch), none per record."""
    from flowrun.batch import arun_batch

    wf = make_flow(tmp_path, DIAMOND)
    rows = [{"text": f"ticket {i}"} for i in range(RECORDS)]
    created: list[str] = []

    async def scenario() -> list:
        loop = asyncio.get_running_loop()

        def factory(loop, coro, **kwargs):  # type: ignore[no-untyped-def]
            task = asyncio.Task(coro, loop=loop, **kwargs)
            created.append(task.get_name())
            return task

        loop.set_task_factory(factory)
        return [r async for r in arun_batch(wf, rows, via="batch-api")]

    results = asyncio.run(scenario())
    assert [r.index for r in results] == list(range(RECORDS)) and all(r.ok for r in results)
    batches = len(server.batch_api.batches)  # (100 requests per file: 9 or more)
    assert len(created) < batches + 20, f"{len(created)} tasks for {RECORDS} records"


MODEL_ONLY = """\
version: 1
name: model-only
inputs:
  ticket: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 60
steps:
  classify:
    type: extract
    prompt: "Classify: {{ inputs.ticket }}"
    schema:
      type: object
      properties:
        category: {type: string, enum: [billing, bug, other]}
      required: [category]
      additionalProperties: false
  tags:
    type: chat
    foreach: "{{ [inputs.ticket, 'extra'] }}"
    prompt: "Tag {{ item }}"
  vector:
    type: embed
    input: "{{ inputs.ticket }}"
    dimensions: 4
  join:
    type: chat
    prompt: "Join {{ steps.classify.output.category }} {{ steps.tags.output | join(',') }}"
outputs:
  category: "{{ steps.classify.output.category }}"
  tags: "{{ steps.tags.output }}"
  dims: "{{ steps.vector.output | length }}"
  joined: "{{ steps.join.output }}"
"""


def test_a_model_only_workflow_starting_records_eagerly_gives_a_live_runs_output(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """Every step a model step: records start in the runner's task. A foreach's items, an
    embedding and extract repairs (a later request of a step, waited for in memory, so the
    record goes on in a task of its own) give what a live run of the same records gives."""

    def classify(req: RecordedRequest) -> Reply:
        n = int(re.search(r"ticket (\d+)", req.text)[1])  # type: ignore[index]
        if n % 3 == 1 and "does not match" not in req.text:
            return Reply(json={"category": "weird"})  # repaired by a second request
        return Reply(json={"category": ["billing", "bug", "other"][n % 3]})

    wf = make_flow(tmp_path, MODEL_ONLY)
    records = write_records(tmp_path / "in.jsonl", [{"ticket": f"ticket {i}"} for i in range(24)])
    outputs = {}
    for via in ("live", "batch-api"):
        server.reset()
        server.add(classify, match="Classify:", times=None)
        out = tmp_path / f"{via}.jsonl"
        res = flowrun("run", wf, "--batch", records, "--output", out, "--via", via)
        assert res.code == 0, res.output
        outputs[via] = [x["outputs"] for x in read_lines(out)]
    assert outputs["batch-api"] == outputs["live"]
    assert outputs["live"][1]["category"] == "bug" and outputs["live"][1]["dims"] == 4
    assert outputs["live"][1]["tags"] == ["echo: Tag ticket 1", "echo: Tag extra"]


OBJECTS = """\
version: 1
name: objects
inputs:
  text: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 60
steps:
  plain:
    type: tool
    function: TOOLS:plain
    args: {text: "{{ inputs.text }}"}
  ordered:
    type: tool
    function: TOOLS:ordered
    args: {text: "{{ inputs.text }}"}
  ask:
    type: chat
    prompt: "{{ steps.ordered.output.last }} of {{ steps.plain.output.words[0] }}"
outputs:
  answer: "{{ steps.ask.output }}"
"""

OBJECT_TOOLS = """\
def plain(text: str) -> dict:
    return {"words": text.split(), "n": 10**30, "none": None, "half": 0.5}


def ordered(text: str) -> dict:
    return {"last": text.split()[-1], "first": text.split()[0]}
"""


def test_completed_steps_come_back_with_the_same_types(
    server: LoopbackServer, tmp_path: Path
) -> None:
    """A waiting record's completed steps (marshalled while it waits) come back with outputs
    of the same values, types and key order, and their calls counted once."""
    from flowrun.batch import run_batch

    wf = make_flow(tmp_path, OBJECTS, OBJECT_TOOLS)
    rows = [{"text": f"ticket number {i}"} for i in range(5)]
    results = list(run_batch(wf, rows, via="batch-api"))
    assert [r.error for r in results] == [None] * 5
    assert [r.outputs["answer"] for r in results] == [f"echo: {i} of ticket" for i in range(5)]
    steps = results[3].steps
    plain, ordered = steps["plain"].output, steps["ordered"].output
    assert plain == {"words": ["ticket", "number", "3"], "n": 10**30, "none": None, "half": 0.5}
    assert list(ordered.items()) == [("last", "3"), ("first", "ticket")]
    assert type(plain["n"]) is int and type(plain["half"]) is float
    assert [len(r.steps["ask"].calls) for r in results] == [1] * 5
    assert len(server.batch_api.submitted_custom_ids()) == 5  # one request a record, once
