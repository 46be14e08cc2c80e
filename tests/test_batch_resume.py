"""Batch durability: --resume and `flowrun resume BATCH_ID` skip finished records and reuse
completed steps; kill -9 loses nothing already paid for; the budget caps the whole batch."""

from __future__ import annotations

import json
import os
import re
import signal
from collections import Counter

from flowrun.testing import Reply
from tests.helpers import flowrun, flowrun_process
from tests.run_helpers import start_flowrun, wait_for, write
from tests.test_batch import ASK, DIAMOND, jsonl, lines


def prompts(server) -> Counter[str]:
    return Counter(r.last_user_text for r in server.requests_to("/chat/completions"))


def test_resume_runs_only_the_records_that_did_not_succeed(server, tmp_path):
    wf = write(tmp_path, DIAMOND)
    data = jsonl(tmp_path / "in.jsonl", [{"q": f"q{i}", "gold": i} for i in range(6)])
    out = tmp_path / "out.jsonl"
    server.add(Reply(status=500, error="down"), match="D echo: B q1 ", times=1)
    server.add(Reply(status=500, error="down"), match="B q4", times=1)
    first = flowrun("run", wf, "--batch", data, "--output", out)
    assert first.code == 1
    assert [x["status"] for x in lines(out)] == ["succeeded", "failed"] + ["succeeded"] * 2 + [
        "failed",
        "succeeded",
    ]
    before = prompts(server)

    again = flowrun("run", wf, "--batch", data, "--output", out, "--resume")
    assert again.code == 0, again.stderr
    assert "4 already done" in again.stderr and "2 succeeded, 0 failed" in again.stderr
    new = prompts(server) - before
    # record 1: b and c completed before its join failed; they are reused, not called again
    assert new == Counter(
        {"D echo: B q1 + echo: C q1": 1, "B q4": 1, "D echo: B q4 + echo: C q4": 1}
    )
    got = lines(out)
    assert [x["index"] for x in got] == list(range(6))
    assert all(x["status"] == "succeeded" for x in got)
    assert [x["extra"] for x in got] == [{"gold": i} for i in range(6)]
    assert got[1]["outputs"] == {"answer": "echo: D echo: B q1 + echo: C q1"}
    # the line of a resumed record counts its reused steps too: the same as record 0's three calls
    assert got[1]["usage"] == got[0]["usage"] and got[1]["cost_usd"] == got[0]["cost_usd"]
    assert not (tmp_path / "out.jsonl.partial").exists()

    done = flowrun("run", wf, "--batch", data, "--output", out, "--resume", "--json")
    assert done.code == 0
    assert json.loads(done.stdout)["skipped"] == 6 and prompts(server) - before == new


def test_flowrun_resume_batch_id_continues_the_stored_command(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"q": f"q{i}", "gold": i} for i in range(4)])
    out = tmp_path / "out.jsonl"
    server.add(Reply(status=500, error="down"), match="q2", times=1)
    first = flowrun(
        "run", wf, "--batch", data, "--output", out, "--map", "question=${data.q}",
        "-i", "style=terse", "--json",
    )  # fmt: skip
    assert first.code == 1
    batch_id = json.loads(first.stdout)["batch_id"]
    assert re.search(
        rf"hint: fix the cause and retry only them with: flowrun resume {batch_id}", first.stderr
    )

    res = flowrun("resume", batch_id, "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["batch_id"] == batch_id
    assert (doc["succeeded"], doc["skipped"], doc["failed"]) == (1, 3, 0)
    # the mapping and the -i constant came back from the batch store
    assert prompts(server)["Answer (terse): q2"] == 2
    assert sum(prompts(server).values()) == 5
    assert [x["status"] for x in lines(out)] == ["succeeded"] * 4

    res = flowrun("resume", "batch-does-not-exist")
    assert res.code == 2 and "no batch 'batch-does-not-exist'" in res.stderr


def test_kill_9_loses_no_completed_step(server, tmp_path):
    """Records done but waiting behind a slow one, and the slow one's finished steps, survive."""
    wf = write(tmp_path, DIAMOND)
    n = 6
    data = jsonl(tmp_path / "in.jsonl", [{"q": f"q{i}"} for i in range(n)])
    out = tmp_path / "out.jsonl"
    server.add(Reply(content="slow", latency=60), match="D echo: B q0 ", times=1)
    proc = start_flowrun("run", wf, "--batch", data, "--output", out)

    def joins_done():
        return sum(c for p, c in prompts(server).items() if p.startswith("D ")) == n

    wait_for(joins_done, what="every join request")
    # the finished records wait behind record 0; give the store's write-behind time to flush
    wait_for(lambda: _stored_steps() >= 2 + 3 * (n - 1), what="stored steps")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    assert not out.exists() or out.read_text() == ""  # nothing could be written in order yet
    before = prompts(server)

    res = flowrun("run", wf, "--batch", data, "--output", out, "--resume")
    assert res.code == 0, res.stderr
    # only record 0's join (killed in flight) is requested again
    assert prompts(server) - before == Counter({"D echo: B q0 + echo: C q0": 1})
    assert [x["status"] for x in lines(out)] == ["succeeded"] * n
    assert _stored_steps() == 0  # finished records' steps are cleared from the store


def _stored_records() -> set[int]:
    from tests.run_helpers import query

    return {row[0] for row in query("SELECT DISTINCT record_index FROM batch_steps")}


def _stored_steps() -> int:
    from tests.run_helpers import query

    rows = query("SELECT COUNT(*) FROM batch_steps")
    return rows[0][0] if rows else 0


def test_the_budget_caps_the_whole_batch_and_stops_it(server, tmp_path):
    wf = write(
        tmp_path,
        ASK.replace("max_completion_tokens: 50", "max_completion_tokens: 500"),
    )
    # each call really costs its worst case: 500 completion tokens of gpt-4o-mini ($0.0003)
    server.default = Reply(content="ok", usage={"prompt_tokens": 1, "completion_tokens": 500})
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(10)])
    out = tmp_path / "out.jsonl"
    res = flowrun(
        "run", wf, "--batch", data, "--output", out, "--max-cost", "0.001", "--concurrency", "2"
    )
    assert res.code == 1
    assert len(server.requests_to("/chat/completions")) == 3
    got = lines(out)
    assert [x["status"] for x in got] == ["succeeded"] * 3 + ["failed"]
    assert "budget" in got[3]["error"] and "no call was made" in got[3]["error"]
    assert "error: batch stopped: the budget of $0.001 is spent" in res.stderr
    assert "hint: raise --max-cost and continue with: flowrun resume batch-" in res.stderr

    # the cap is for the whole batch: resuming with the same cap runs nothing more
    again = flowrun("run", wf, "--batch", data, "--output", out, "--resume", "--max-cost", "0.001")
    assert again.code == 1 and len(server.requests_to("/chat/completions")) == 3
    more = flowrun("run", wf, "--batch", data, "--output", out, "--resume", "--max-cost", "0.01")
    assert more.code == 0, more.stderr
    assert len(server.requests_to("/chat/completions")) == 10
    assert [x["status"] for x in lines(out)] == ["succeeded"] * 10


def test_concurrent_worst_case_reservations_wait_instead_of_failing(server, tmp_path):
    """32 records in flight each reserve $0.0003 worst case; $0.002 fits only 6 at once, but
    the real cost is tiny, so every record must succeed (refused calls wait and retry)."""
    wf = write(tmp_path, ASK.replace("max_completion_tokens: 50", "max_completion_tokens: 500"))
    server.default = Reply(content="ok", latency=0.01)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(30)])
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--max-cost", "0.002")
    assert res.code == 0, res.stderr
    assert [x["status"] for x in lines(out)] == ["succeeded"] * 30
    assert len(server.requests_to("/chat/completions")) == 30


def test_sigterm_keeps_finished_lines_and_resume_completes(server, tmp_path):
    wf = write(tmp_path, ASK)
    n = 6
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(n)])
    out = tmp_path / "out.jsonl"
    server.add(Reply(content="slow", latency=60), match="q3", times=1)
    proc = start_flowrun("run", wf, "--batch", data, "--output", out, "--concurrency", "2")
    wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3, what="3 lines")
    # records 4 and 5 finish behind the slow record 3; their steps reach the batch store. (Wait
    # for those two records by index: a count of 2 rows can also be records 1 and 2, whose
    # steps a flush caught just before their lines were written and whose deletion is not
    # committed yet; the test then signalled while 4 and 5 were still in flight.)
    wait_for(lambda: _stored_records() == {4, 5}, what="records 4 and 5 stored")
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 1, err
    assert "error: interrupted; finished records are in the output" in err
    batch_id = re.search(r"continue with: flowrun resume (batch-\S+)", err).group(1)
    assert [x["index"] for x in lines(out)] == [0, 1, 2]
    before = prompts(server)

    res = flowrun("resume", batch_id)
    assert res.code == 0, res.stderr
    # only the interrupted record is asked again; 4 and 5 come from the batch store
    assert prompts(server) - before == Counter({"Answer (plain): q3": 1})
    assert [x["status"] for x in lines(out)] == ["succeeded"] * n


def test_resuming_a_batch_that_is_still_running_is_refused(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "q0"}, {"question": "q1"}])
    out = tmp_path / "out.jsonl"
    server.add(Reply(content="slow", latency=30), match="q1", times=1)
    proc = start_flowrun("run", wf, "--batch", data, "--output", out)
    try:
        wait_for(lambda: out.exists() and out.read_text().count("\n") == 1, what="the first line")
        res = flowrun("run", wf, "--batch", data, "--output", out, "--resume")
        assert res.code == 2
        assert re.search(
            rf"error: batch batch-\S+ \(pid {proc.pid}, started at \S+\) is still writing ",
            res.stderr,
        )
    finally:
        proc.kill()
        proc.communicate(timeout=10)
    assert prompts(server)["Answer (plain): q1"] == 1


def test_two_batches_with_the_same_output_the_second_is_refused(server, tmp_path):
    """Two real processes given the same --output: the second exits 2 with one line naming
    the first (its batch, pid and start time) and calls nothing; no record is paid twice."""
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(4)])
    out = tmp_path / "out.jsonl"
    server.add(Reply(content="slow", latency=30), match="q1", times=1)
    first = start_flowrun("run", wf, "--batch", data, "--output", out, "--concurrency", "1")
    try:
        wait_for(lambda: prompts(server)["Answer (plain): q1"] == 1, what="record 1 in flight")
        asked = sum(prompts(server).values())
        for extra in ([], ["--resume"]):
            second = flowrun_process("run", wf, "--batch", data, "--output", out, *extra)
            assert second.code == 2, second.stderr
            assert re.fullmatch(
                rf"error: batch (batch-\S+) \(pid {first.pid}, started at \S+\) is still "
                rf"writing {re.escape(str(out.resolve()))}; not starting a second one\n",
                second.stderr,
            ), second.stderr
        assert sum(prompts(server).values()) == asked  # the refused processes called nothing
    finally:
        first.kill()
        first.communicate(timeout=10)
    assert [x["index"] for x in lines(out)] == [0]  # only the first process wrote to it
    # once the first is gone, the lock is gone with it: the output can be continued
    res = flowrun("run", wf, "--batch", data, "--output", out, "--resume")
    assert res.code == 0, res.stderr
    assert prompts(server) == Counter({f"Answer (plain): q{i}": 1 + (i == 1) for i in range(4)})


def test_resume_ignores_a_cut_off_last_line_but_refuses_a_foreign_file(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(3)])
    out = tmp_path / "out.jsonl"
    assert flowrun("run", wf, "--batch", data, "--output", out).code == 0
    first, second, _ = out.read_text().splitlines(keepends=True)
    out.write_text(first + second[:25], encoding="utf-8")  # a crash cut line 2 in the middle
    before = prompts(server)
    res = flowrun("run", wf, "--batch", data, "--output", out, "--resume")
    assert res.code == 0, res.stderr
    assert prompts(server) - before == Counter({"Answer (plain): q1": 1, "Answer (plain): q2": 1})
    assert [x["index"] for x in lines(out)] == [0, 1, 2]

    out.write_text(first + "hello\n" + second, encoding="utf-8")
    res = flowrun("run", wf, "--batch", data, "--output", out, "--resume")
    assert res.code == 2
    assert f"error: {out}:2: not a result line, so --resume cannot continue it" in res.stderr
    out.write_text(second + first, encoding="utf-8")
    res = flowrun("run", wf, "--batch", data, "--output", out, "--resume")
    assert res.code == 2 and f"{out}:2: record 0 is out of order" in res.stderr


def test_a_permanently_bad_line_does_not_block_later_resumes(server, tmp_path):
    """The first-record check is for a fresh run's record 0, not for the first record a resume
    reaches: here line 2 is broken for good, and record 2 failed only for a while."""
    wf = write(tmp_path, ASK)
    data = tmp_path / "in.jsonl"
    data.write_text(
        '{"question": "q0"}\n{"question": \n{"question": "q2"}\n{"question": "q3"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    server.add(Reply(status=500, error="down"), match="q2", times=1)
    first = flowrun("run", wf, "--batch", data, "--output", out)
    assert first.code == 1
    assert [x["status"] for x in lines(out)] == ["succeeded", "failed", "failed", "succeeded"]

    again = flowrun("run", wf, "--batch", data, "--output", out, "--resume", "--json")
    assert again.code == 1, again.stderr  # record 1 still fails, alone
    assert "nothing was run" not in again.stderr
    doc = json.loads(again.stdout)
    assert (doc["succeeded"], doc["failed"], doc["skipped"]) == (1, 1, 2)
    assert prompts(server)["Answer (plain): q2"] == 2
    got = lines(out)
    assert [x["status"] for x in got] == ["succeeded", "failed", "succeeded", "succeeded"]
    assert got[1]["error"].startswith(f"{data}:2: not valid JSON")


def test_a_budget_stop_reports_the_records_never_run(server, tmp_path):
    wf = write(tmp_path, ASK.replace("max_completion_tokens: 50", "max_completion_tokens: 500"))
    server.default = Reply(content="ok", usage={"prompt_tokens": 1, "completion_tokens": 500})
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(10)])
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--max-cost", "0.001",
                  "--concurrency", "2", "--json")  # fmt: skip
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert (doc["succeeded"], doc["failed"], doc["not_run"]) == (3, 1, 6)
    assert len(lines(out)) == 4

    text = flowrun("run", wf, "--batch", data, "--output", tmp_path / "o2.jsonl",
                   "--max-cost", "0.001", "--concurrency", "2")  # fmt: skip
    assert text.code == 1
    assert re.search(r"batch \S+: 3 succeeded, 1 failed, 6 not run in ", text.stderr)


def test_a_full_disk_keeps_the_finished_records_and_resume_asks_nothing_again(
    server, tmp_path, monkeypatch
):
    """OUT cannot be written (No space left on device, after half a line): exit 1 with one
    clear line; the finished records are in the store, and the resume asks none of them
    again while it writes OUT from the store."""
    import errno

    from flowrun.batch.output_file import OutputWriter

    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(4)])
    out = tmp_path / "out.jsonl"

    def last(req):  # record 0 is answered once records 1-3 are finished and committed
        wait_for(lambda: _stored_records() == {1, 2, 3}, what="records 1-3 stored")
        return Reply(content="first")

    server.add(last, match="q0")
    real_write = OutputWriter.write
    calls = []

    def full_disk(self, result):
        calls.append(result.index)
        if len(calls) == 2:  # the disk fills up in the middle of the second line
            self._open().write('{"index": 1, "sta')
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(self, result)

    monkeypatch.setattr(OutputWriter, "write", full_disk)
    first = flowrun("run", wf, "--batch", data, "--output", out, "--concurrency", "4")
    assert first.code == 1, first.stderr
    assert f"error: cannot write the output {out}: No space left on device\n" in first.stderr
    assert "internal error" not in first.stderr and "Traceback" not in first.stderr
    batch_id = re.search(r"continue with: flowrun resume (batch-\S+)", first.stderr).group(1)
    assert out.read_text().splitlines()[1] == '{"index": 1, "sta'  # cut off, as on a full disk
    assert _stored_records() == {1, 2, 3}
    asked = prompts(server)
    assert asked == Counter({f"Answer (plain): q{i}": 1 for i in range(4)})

    monkeypatch.setattr(OutputWriter, "write", real_write)
    res = flowrun("resume", batch_id)
    assert res.code == 0, res.stderr
    assert prompts(server) == asked  # nothing asked again: OUT was finished from the store
    got = lines(out)
    assert [x["index"] for x in got] == [0, 1, 2, 3]
    assert [x["outputs"]["answer"] for x in got] == ["first"] + [
        f"echo: Answer (plain): q{i}" for i in (1, 2, 3)
    ]


def test_a_paid_step_is_in_the_store_before_the_step_after_it_is_asked(
    server, tmp_path, monkeypatch
):
    """A live batch commits a step that made a model call the moment it completes (kill -9
    then loses no answered call), not at the next periodic flush: here there is none."""
    from tests.run_helpers import query

    monkeypatch.setattr("flowrun.batch.runner.TICK_S", 3600.0)
    stored_when_d_asked: list[set[str]] = []

    def d(req):
        rows = query("SELECT step_id FROM batch_steps WHERE record_index=0")
        stored_when_d_asked.append({row[0] for row in rows})
        return Reply(content="joined")

    server.add(d, match="D ")
    wf = write(tmp_path, DIAMOND)
    data = jsonl(tmp_path / "in.jsonl", [{"q": "q0"}])
    res = flowrun("run", wf, "--batch", data, "--output", tmp_path / "out.jsonl")
    assert res.code == 0, res.stderr
    assert stored_when_d_asked == [{"b", "c"}]
    assert _stored_steps() == 0  # the record's line is written: its steps are cleared
