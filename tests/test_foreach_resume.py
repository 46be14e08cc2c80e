"""A foreach step's answered items are durable: Ctrl-C / SIGTERM / a failed item in the middle
of a foreach, then a resume, and every item was answered (paid for) exactly once overall."""

from __future__ import annotations

import json
import signal
import threading
from collections import Counter

import pytest

from flowrun.api import resume_run
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import only_run_id, query, start_flowrun, wait_for, write

TWELVE = """\
version: 1
name: twelve
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 20
steps:
  label:
    type: chat
    foreach: "{{ range(12) | list }}"
    max_concurrency: 3
    prompt: "label item {{ item }}"
  summary:
    type: chat
    prompt: "summarise {{ steps.label.output | join(',') }}"
outputs:
  labels: "{{ steps.label.output | join(',') }}"
"""


def _item(req) -> int | None:
    text = req.last_user_text
    return int(text.split()[-1]) if text.startswith("label item ") else None


def _answered(server) -> Counter[int]:
    """Items whose request the server answered (a reply sent: a call paid for)."""
    return Counter(
        _item(r)
        for r in server.requests_to("/chat/completions")
        if _item(r) is not None and r.replied_at is not None
    )


def _asked(server) -> Counter[int]:
    return Counter(
        _item(r) for r in server.requests_to("/chat/completions") if _item(r) is not None
    )


def _stored_items() -> int:
    rows = query("SELECT COUNT(*) FROM step_items")
    return rows[0][0] if rows else 0


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_during_a_foreach_keeps_the_answered_items(server, tmp_path, sig):
    wf = write(tmp_path, TWELVE)
    gate = threading.Event()

    def held(req):  # items 5 and later wait until the test lets them go
        gate.wait(120)
        return Reply(content=f"late {_item(req)}")

    server.add(held, match=lambda r: (_item(r) or 0) >= 5, times=None)
    proc = start_flowrun("run", wf)
    try:
        # items 0-4 answered and committed; three later items are in flight, held
        wait_for(lambda: _stored_items() == 5, what="five items stored")
        wait_for(lambda: sum(_asked(server).values()) == 8, what="three items in flight")
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    finally:
        gate.set()
    run_id = only_run_id()
    assert proc.returncode == 1, err
    assert f"flowrun resume {run_id}" in err and "Traceback" not in err
    first = _answered(server)
    assert sorted(first) == [0, 1, 2, 3, 4]
    # the paid items count in the interrupted run's cost
    shown = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "interrupted" and shown["cost_usd"] > 0
    asked_before = _asked(server)

    server.reset()
    res = flowrun("resume", run_id, "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"]["labels"] == ",".join(f"echo: label item {i}" for i in range(12))
    again = _answered(server)
    assert sorted(again) == list(range(5, 12))  # only the rest was asked
    assert first + again == Counter(range(12))  # every item paid for exactly once overall
    assert set(asked_before) == set(range(8))
    # the cost of the run covers the 5 kept items' calls too: 12 items and the summary
    assert doc["cost"]["calls"] == 13
    assert _stored_items() == 0  # the step succeeded: its items are no longer kept apart


def test_a_failed_item_keeps_the_others_and_resume_run_asks_it_alone(server, tmp_path):
    """A foreach step whose last item failed (a 400) keeps the eleven others; resume_run asks
    item 11 alone, and the report counts the kept calls apart from the new one. (One item at a
    time: with three in flight, the failure would cancel items 9 and 10.)"""
    wf = write(tmp_path, TWELVE.replace("max_concurrency: 3", "max_concurrency: 1"))
    server.add(Reply(status=400, error="bad item"), match="label item 11")
    failed = flowrun("run", wf)
    assert failed.code == 1 and "item 11" in failed.stderr
    run_id = only_run_id()
    assert _asked(server) == Counter(range(12))
    assert _stored_items() == 11

    server.reset()
    result = resume_run(run_id)
    assert result.ok, result.error
    assert _asked(server) == Counter({11: 1})
    assert result.outputs["labels"].split(",")[11] == "echo: label item 11"
    assert result.steps["label"].kept_calls == 11
    assert result.cost.calls == 13
    # the kept items were paid once, and count once in the run's cost
    shown = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    assert shown["cost_usd"] == pytest.approx(result.cost.total_usd)
    assert not result.earlier_usd


def test_a_changed_step_runs_its_items_again(server, tmp_path):
    """Kept items are keyed by what they were computed from: edit the prompt and resume, and
    every item is asked again (none is answered from the old prompt)."""
    one_by_one = TWELVE.replace("max_concurrency: 3", "max_concurrency: 1")
    wf = write(tmp_path, one_by_one)
    server.add(Reply(status=400, error="bad item"), match="label item 11")
    assert flowrun("run", wf).code == 1
    run_id = only_run_id()
    paid_before = json.loads(flowrun("runs", "show", run_id, "--json").stdout)["cost_usd"]
    assert paid_before > 0  # the eleven items answered
    wf.write_text(one_by_one.replace("label item {{ item }}", "label item: {{ item }}"))
    server.reset()
    res = flowrun("resume", run_id)
    assert res.code == 0, res.stderr
    # the old items, asked again, were paid for all the same: the run's cost keeps them
    assert f"earlier attempts of the steps run again: ${paid_before:.6f}" in res.stderr
    shown = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    now = sum(step["cost_usd"] for step in shown["steps"].values())
    assert shown["cost_usd"] == pytest.approx(paid_before + now)
    asked = Counter(r.last_user_text for r in server.requests_to("/chat/completions"))
    assert sum(v for k, v in asked.items() if k.startswith("label item: ")) == 12
    assert "foreach items answered before" not in res.stderr


def test_the_resume_report_counts_the_kept_items_apart(server, tmp_path):
    """What a user reads after `flowrun resume`: the kept items' calls are in the total, and
    the calls this resume made are only the new ones (item 11 and the summary step)."""
    wf = write(tmp_path, TWELVE.replace("max_concurrency: 3", "max_concurrency: 1"))
    server.add(Reply(status=400, error="bad item"), match="label item 11")
    assert flowrun("run", wf).code == 1
    res = flowrun("resume", only_run_id())
    assert res.code == 0, res.stderr
    assert "total: 13 calls," in res.stderr
    assert (
        "resumed: 11 calls of foreach items answered before kept (in the total above); "
        "this resume made 2 calls"
    ) in res.stderr
