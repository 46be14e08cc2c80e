"""A resume killed hard loses nothing: the records it finished (written to OUT.partial) are
neither run nor paid for again by the next resume."""

from __future__ import annotations

import os
import signal
from collections import Counter

from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import start_flowrun, wait_for, write
from tests.test_batch import ASK, jsonl, lines
from tests.test_batch_resume import prompts


def kill_9(proc) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()


def count_lines(path) -> int:
    return len(path.read_text(encoding="utf-8").splitlines()) if path.exists() else 0


def test_run_kill_resume_kill_resume_sends_no_request_twice(server, tmp_path):
    wf = write(tmp_path, ASK)
    n = 8
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(n)])
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    server.add(Reply(content="slow", latency=60), match="q5", times=1)
    server.add(Reply(content="slow", latency=60), match="q7", times=1)
    args = ("run", wf, "--batch", data, "--output", out, "--concurrency", "1")

    first = start_flowrun(*args)
    wait_for(lambda: count_lines(out) == 5 and prompts(server)["Answer (plain): q5"], what="q5")
    kill_9(first)

    second = start_flowrun(*args, "--resume")
    wait_for(lambda: count_lines(partial) == 7 and prompts(server)["Answer (plain): q7"], what="q7")
    kill_9(second)
    assert count_lines(out) == 5  # the kill left OUT as it was; q5 and q6 are only in .partial
    before = prompts(server)

    third = flowrun(*args, "--resume")
    assert third.code == 0, third.stderr
    # only q7, killed in flight, is asked again; q5 and q6 came from OUT.partial
    assert prompts(server) - before == Counter({"Answer (plain): q7": 1})
    assert prompts(server) == Counter(
        {f"Answer (plain): q{i}": 2 if i in (5, 7) else 1 for i in range(n)}
    )
    got = lines(out)
    assert [x["index"] for x in got] == list(range(n))
    assert [x["outputs"]["answer"] for x in got][5:] == ["echo: Answer (plain): q5",
        "echo: Answer (plain): q6", "echo: Answer (plain): q7"]  # fmt: skip
    assert not partial.exists()


def test_a_cut_off_partial_line_is_dropped_and_a_stale_partial_needs_resume(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(4)])
    out = tmp_path / "out.jsonl"
    partial = tmp_path / "out.jsonl.partial"
    assert flowrun("run", wf, "--batch", data, "--output", out).code == 0
    full = out.read_text(encoding="utf-8").splitlines(keepends=True)
    out.write_text(full[0], encoding="utf-8")  # as if records 1-3 had failed
    partial.write_text(full[0] + full[1] + full[2][:20], encoding="utf-8")  # killed mid-line
    before = prompts(server)

    res = flowrun("run", wf, "--batch", data, "--output", out, "--resume", "--json")
    assert res.code == 0, res.stderr
    assert prompts(server) - before == Counter({"Answer (plain): q2": 1, "Answer (plain): q3": 1})
    assert [x["index"] for x in lines(out)] == [0, 1, 2, 3] and not partial.exists()

    out.unlink()
    partial.write_text(full[0], encoding="utf-8")
    res = flowrun("run", wf, "--batch", data, "--output", out)
    assert res.code == 2
    assert f"error: {partial} holds the results of a resume that was cut off" in res.stderr
    assert "hint: continue it with --resume" in res.stderr


FOREACH = """\
version: 1
name: labels
inputs:
  question: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 20
steps:
  label:
    type: chat
    foreach: "{{ range(6) | list }}"
    max_concurrency: 1
    prompt: "label {{ inputs.question }} item {{ item }}"
outputs:
  labels: "{{ steps.label.output | join(',') }}"
"""


def test_a_killed_batch_keeps_the_answered_items_of_a_foreach_step(server, tmp_path):
    """kill -9 in the middle of a record's foreach step: the items answered before the kill
    were paid for, so the resumed batch asks only the rest of them."""
    wf = write(tmp_path, FOREACH)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "q0"}])
    out = tmp_path / "out.jsonl"
    server.add(Reply(content="slow", latency=60), match="q0 item 3", times=1)
    args = ("run", wf, "--batch", data, "--output", out)
    first = start_flowrun(*args)
    wait_for(lambda: prompts(server)["label q0 item 3"] == 1, what="item 3's request")
    kill_9(first)
    assert Counter(prompts(server)) == Counter({f"label q0 item {i}": 1 for i in range(4)})

    res = flowrun(*args, "--resume")
    assert res.code == 0, res.stderr
    # items 0-2 were answered before the kill: only item 3 (killed in flight) and 4-5 are asked
    assert prompts(server) == Counter({f"label q0 item {i}": 2 if i == 3 else 1 for i in range(6)})
    assert lines(out)[0]["outputs"]["labels"] == ",".join(
        f"echo: label q0 item {i}" for i in range(6)
    )
