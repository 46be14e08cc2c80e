"""promptflow evaluation flows: the aggregation node becomes a tool step with ``aggregate:
true`` that runs once after every record with lists of their values; its ``log_metric`` calls
(promptflow's, through the stand-in) become the run's metrics: in the batch summary, in
``--json``, and in the run store's ``metrics`` table."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from flowrun import load_workflow
from flowrun.testing import Reply
from tests.helpers import flowrun, flowrun_process

FLOWS = Path(__file__).parent / "promptflow_flows"
CHAT = "/chat/completions"


@pytest.fixture
def flow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    target = tmp_path / "evaluation"
    shutil.copytree(FLOWS / "evaluation", target)
    monkeypatch.setenv("FLOWRUN_HOME", str(tmp_path / "home"))
    res = flowrun("convert", "promptflow", target)
    assert res.code == 0, res.output
    assert (
        "  accuracy  python, aggregation  -> tool step, accuracy:accuracy, aggregate: once over "
        "every record"
    ) in res.stdout.splitlines()
    return target


def judge(req) -> Reply:
    text = req.last_user_text
    answer = text.split("Answer: ")[1].split("\n")[0]
    expected = text.split("Expected: ")[1].split("\n")[0]
    return Reply(content="Correct" if answer == expected else "Incorrect, sorry")


def stored_metrics(home: Path, owner: str) -> dict:
    with sqlite3.connect(home / "runs.db") as db:
        rows = db.execute("SELECT kind, name, value FROM metrics WHERE owner=?", (owner,))
        return {name: (kind, json.loads(value)) for kind, name, value in rows}


def test_batch_runs_the_aggregation_once_over_every_record(flow, server, tmp_path):
    assert load_workflow(flow / "flowrun.yaml").spec.steps["accuracy"].aggregate is True
    server.add(judge, times=None)
    out = tmp_path / "out.jsonl"
    res = flowrun(
        "run", flow / "flowrun.yaml", "--batch", flow / "data.jsonl", "--output", out, "--json"
    )
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["metrics"] == {"accuracy": 0.6, "graded": 5}
    assert summary["metrics_records"] == 5
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["outputs"]["grade"] for line in lines] == [
        "Correct", "Incorrect", "Correct", "Incorrect", "Correct",
    ]  # fmt: skip
    # one judge request per record, and none for the aggregation
    bodies = [r.body for r in server.requests_to(CHAT)]
    assert len(bodies) == 5
    assert sorted(b["messages"][1]["content"] for b in bodies)[0] == "Answer: 4\nExpected: 4"
    assert all(b["messages"][0] == {"role": "system", "content": "Reply Correct or Incorrect."}
               for b in bodies)  # fmt: skip
    assert all(b["temperature"] == 0 for b in bodies)
    home = tmp_path / "home"
    assert stored_metrics(home, summary["batch_id"]) == {
        "accuracy": ("batch", 0.6),
        "graded": ("batch", 5),
    }


def test_batch_summary_shows_the_metrics(flow, server, tmp_path):
    server.add(judge, times=None)
    out = tmp_path / "out.jsonl"
    res = flowrun("run", flow / "flowrun.yaml", "--batch", flow / "data.jsonl", "--output", out)
    assert res.code == 0, res.stderr
    assert "metrics (over 5 records): accuracy=0.6, graded=5" in res.stderr.splitlines()


def test_a_failed_record_is_left_out_of_the_aggregation(flow, server, tmp_path):
    server.add(Reply(status=400, error="bad request"), match="Lyon")
    server.add(judge, times=None)
    out = tmp_path / "out.jsonl"
    res = flowrun(
        "run", flow / "flowrun.yaml", "--batch", flow / "data.jsonl", "--output", out, "--json"
    )
    assert res.code == 1
    summary = json.loads(res.stdout)
    assert summary["failed"] == 1
    assert summary["metrics"] == {"accuracy": 0.75, "graded": 4}


def test_a_single_run_aggregates_its_one_record(flow, server, tmp_path):
    server.add(judge, times=None)
    res = flowrun(
        "run", flow / "flowrun.yaml", "-i", "answer=Paris", "-i", "groundtruth=Paris", "--json"
    )
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"] == {"grade": "Correct"}
    assert doc["metrics"] == {"accuracy": 1.0, "graded": 1}
    assert doc["steps"]["accuracy"]["output"] == {"accuracy": 1.0}
    assert list(doc["steps"]) == ["judge", "grade", "accuracy"]
    assert stored_metrics(tmp_path / "home", doc["run_id"]) == {
        "accuracy": ("run", 1.0),
        "graded": ("run", 1),
    }


def test_a_step_reading_an_aggregate_step_is_refused(tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "version: 1\nname: t\nsteps:\n"
        "  total:\n    type: tool\n    aggregate: true\n    function: builtins:len\n"
        "    args: {obj: [1]}\n"
        "  after:\n    type: tool\n    function: builtins:str\n"
        "    args: {object: '{{ steps.total.output }}'}\n"
    )
    res = flowrun("validate", wf)
    assert res.code == 2
    assert res.stderr.splitlines()[0] == (
        f"{wf}:9:3: step 'after' reads the aggregate step 'total', which runs once after every "
        "record: only another aggregate step can read it"
    )


def test_a_resumed_batch_aggregates_every_record_kept_and_resumed(flow, server, tmp_path):
    # the first invocation fails one record (Lyon); `flowrun resume` runs only that one, and the
    # aggregation covers all five: the four kept from before and the resumed one
    server.add(Reply(status=400, error="bad request"), match="Lyon")
    server.add(judge, times=None)
    out = tmp_path / "out.jsonl"
    first = flowrun(
        "run", flow / "flowrun.yaml", "--batch", flow / "data.jsonl", "--output", out, "--json"
    )
    assert first.code == 1
    summary = json.loads(first.stdout)
    assert summary["metrics"] == {"accuracy": 0.75, "graded": 4}
    assert len(server.requests_to(CHAT)) == 5
    server.reset()
    server.add(judge, times=None)
    res = flowrun("resume", summary["batch_id"], "--json")
    assert res.code == 0, res.stderr
    resumed = json.loads(res.stdout)
    assert len(server.requests_to(CHAT)) == 1  # only Lyon's record is asked again
    assert resumed["metrics"] == {"accuracy": 0.6, "graded": 5}
    assert resumed["metrics_records"] == 5
    assert stored_metrics(tmp_path / "home", summary["batch_id"]) == {
        "accuracy": ("batch", 0.6),
        "graded": ("batch", 5),
    }


def test_an_aggregation_parameter_annotated_for_one_value_gets_the_list(tmp_path, server):
    # evaluation/eval-single-turn-metrics' aggregate(results: List[dict], metrics: str) reads
    # metrics[0]: promptflow passes the list whatever the hint says, and so does the step
    target = tmp_path / "evaluation"
    shutil.copytree(FLOWS / "evaluation", target)
    code = target / "accuracy.py"
    code.write_text(code.read_text().replace("answers: List[str]", "answers: str"))
    res = flowrun("convert", "promptflow", target)
    assert res.code == 0, res.stdout
    server.add(judge, times=None)
    run = ("run", target / "flowrun.yaml", "-i", "answer=Paris", "-i", "groundtruth=Paris")
    fixed = flowrun_process(*run, "--json", env=server.env())
    assert fixed.code == 0, fixed.stderr
    assert json.loads(fixed.stdout)["metrics"] == {"accuracy": 1.0, "graded": 1}
