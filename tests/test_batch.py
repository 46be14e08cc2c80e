"""Batch runs end to end: `flowrun run --batch` and `run_batch` against the loopback server."""

from __future__ import annotations

import asyncio
import itertools
import json
import re

from flowrun import arun_batch, load_workflow, run_batch
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import InFlight, write

ASK = """\
version: 1
name: ask
inputs:
  question: {type: string}
  style: {type: string, default: plain}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 50
  max_retries: 0
steps:
  answer:
    type: chat
    prompt: "Answer ({{ inputs.style }}): {{ inputs.question }}"
outputs:
  answer: "{{ steps.answer.output }}"
"""

DIAMOND = """\
version: 1
name: diamond
inputs:
  q: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 50
  max_retries: 0
steps:
  b:
    type: chat
    prompt: "B {{ inputs.q }}"
  c:
    type: chat
    prompt: "C {{ inputs.q }}"
  d:
    type: chat
    prompt: "D {{ steps.b.output }} + {{ steps.c.output }}"
outputs:
  answer: "{{ steps.d.output }}"
"""


def jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def lines(path):
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


def chat_texts(server):
    return [r.last_user_text for r in server.requests_to("/chat/completions")]


def test_output_is_in_input_order_although_records_finish_in_reverse(server, tmp_path):
    wf = write(tmp_path, ASK)
    n = 8
    # the first record is the slowest: results arrive in reverse order
    server.default = lambda req: Reply(
        content=f"A{req.last_user_text[-1]}", latency=0.05 * (n - int(req.last_user_text[-1]))
    )
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(n)])
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out)
    assert res.code == 0, res.stderr
    got = lines(out)
    assert [x["index"] for x in got] == list(range(n))
    assert [x["outputs"] for x in got] == [{"answer": f"A{i}"} for i in range(n)]
    assert all(x["status"] == "succeeded" and x["cost_usd"] > 0 for x in got)
    assert got[0]["line"] == 1 and got[0]["usage"]["completion_tokens"] == 1
    assert re.search(r"8 succeeded, 0 failed in [\d.]+s", res.stderr)
    assert len(server.requests_to("/chat/completions")) == n


def test_a_failed_record_does_not_stop_the_others(server, tmp_path):
    wf = write(tmp_path, DIAMOND)
    server.add(Reply(status=500, error="boom"), match="C q2", times=None)
    data = jsonl(tmp_path / "in.jsonl", [{"q": f"q{i}"} for i in range(5)])
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out)
    assert res.code == 1
    got = lines(out)
    assert [x["status"] for x in got] == ["succeeded"] * 2 + ["failed"] + ["succeeded"] * 2
    failed = got[2]
    assert failed["failed_step"] == "c" and "API error 500: boom" in failed["error"]
    assert "outputs" not in failed and failed["cost_usd"] > 0  # b was paid for
    assert got[4]["outputs"] == {"answer": "echo: D echo: B q4 + echo: C q4"}
    assert "record 2 (line 3) failed: step 'c' failed: API error 500: boom" in res.stderr
    assert "4 succeeded, 1 failed" in res.stderr
    assert "error: 1 of 5 records failed" in res.stderr
    assert re.search(r"hint: .*flowrun resume batch-", res.stderr)
    assert "D q2" not in " ".join(chat_texts(server))  # the join never ran for record 2


def test_csv_records_with_quotes_newlines_and_typed_inputs(server, tmp_path):
    wf = write(
        tmp_path,
        """\
version: 1
name: typed
inputs:
  text: {type: string}
  times: {type: integer}
  loud: {type: boolean, default: false}
steps:
  say:
    type: chat
    model: gpt-4o-mini
    prompt: "{{ inputs.text }} x{{ inputs.times * 2 }} loud={{ inputs.loud }}"
outputs:
  said: "{{ steps.say.output }}"
""",
    )
    data = tmp_path / "in.csv"
    data.write_text('text,times,loud\n"a, b",1,yes\n"two\nlines",3,\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out)
    assert res.code == 0, res.stderr
    got = lines(out)
    assert [x["outputs"]["said"] for x in got] == [
        "echo: a, b x2 loud=True",
        "echo: two\nlines x6 loud=False",
    ]
    assert [x["line"] for x in got] == [2, 3]


def test_column_mapping_plain_and_promptflow_style_and_extra_columns(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(
        tmp_path / "in.jsonl",
        [
            {"q": "why?", "tone": "short", "expected": "because", "question": "ignored"},
            {"q": "how?", "tone": "long", "expected": "so", "id": 7},
        ],
    )
    out = tmp_path / "out.jsonl"
    res = flowrun(
        "run", wf, "--batch", data, "--output", out, "--map", "question=${data.q}",
        "--map", "style=tone",
    )  # fmt: skip
    assert res.code == 0, res.stderr
    assert sorted(chat_texts(server)) == ["Answer (long): how?", "Answer (short): why?"]
    got = lines(out)
    assert got[0]["extra"] == {"expected": "because", "question": "ignored"}
    assert got[1]["extra"] == {"expected": "so", "id": 7}


def test_constants_from_the_command_line_apply_to_every_record(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "a", "style": "x"}, {"question": "b"}])
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "-i", "style=formal")
    assert res.code == 0, res.stderr
    assert sorted(chat_texts(server)) == ["Answer (formal): a", "Answer (formal): b"]
    assert lines(out)[0]["extra"] == {"style": "x"}  # overridden by -i, so carried, not used


def test_mapping_and_header_mistakes_exit_2_before_any_call(server, tmp_path):
    wf = write(tmp_path, ASK)
    csv = tmp_path / "in.csv"
    csv.write_text("q,expected\nwhy,because\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", csv, "--output", out)
    assert res.code == 2
    assert (
        f"error: {csv}:1: no column for the required input 'question' (columns: q, expected)"
        in (res.stderr)
    )
    assert "hint: map another column to it: --map question=COLUMN" in res.stderr
    res = flowrun("run", wf, "--batch", csv, "--output", out, "--map", "question=${data.qq}")
    assert res.code == 2 and "--map question: no column 'qq'" in res.stderr
    res = flowrun("run", wf, "--batch", csv, "--output", out, "--map", "answer=q")
    assert res.code == 2 and "the workflow has no input 'answer'" in res.stderr
    res = flowrun("run", wf, "--batch", csv, "--output", out, "--map", "question=${run.outputs.x}")
    assert res.code == 2 and "only ${data.COLUMN} references are supported" in res.stderr
    assert not server.requests and not out.exists()


def test_a_bad_line_fails_only_its_record_but_a_bad_first_record_exits_2(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = tmp_path / "in.jsonl"
    data.write_text(
        '{"question": "one"}\n\n{"question": "two"\n["not", "an", "object"]\n{"nope": 1}\n'
        '{"question": "five"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out)
    assert res.code == 1
    got = lines(out)
    assert [(x["index"], x["status"]) for x in got] == [
        (0, "succeeded"),
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
        (4, "succeeded"),
    ]
    assert got[1]["error"].startswith(f"{data}:3: not valid JSON:")
    assert got[2]["error"] == f"{data}:4: a record must be a JSON object, got list"
    assert (
        got[3]["error"]
        == f"{data}:5: no column for the required input 'question' (map one with --map question=COLUMN)"
    )
    assert got[3]["extra"] == {"nope": 1} and got[3]["cost_usd"] == 0
    assert sorted(chat_texts(server)) == ["Answer (plain): five", "Answer (plain): one"]

    first_bad = tmp_path / "first.jsonl"
    first_bad.write_text('{"question": 1}\n{"question": "ok"}\n', encoding="utf-8")
    res = flowrun("run", wf, "--batch", first_bad, "--output", tmp_path / "o2.jsonl")
    assert res.code == 2
    assert f"error: {first_bad}:1: input 'question' must be of type string, got int" in res.stderr
    assert "nothing was run" in res.stderr
    assert not (tmp_path / "o2.jsonl").exists() and len(chat_texts(server)) == 2


def test_file_level_problems_exit_2(server, tmp_path):
    wf = write(tmp_path, ASK)
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", tmp_path / "missing.jsonl", "--output", out)
    assert res.code == 2 and "records file" in res.stderr and "does not exist" in res.stderr
    array = tmp_path / "array.json"
    array.write_text('[\n  {"question": "a"}\n]\n', encoding="utf-8")
    res = flowrun("run", wf, "--batch", array, "--output", out)
    assert res.code == 2 and "holds a JSON array; --batch reads JSON Lines" in res.stderr
    csv = tmp_path / "dup.csv"
    csv.write_text("question,question\na,b\n", encoding="utf-8")
    res = flowrun("run", wf, "--batch", csv, "--output", out)
    assert res.code == 2 and f"{csv}:1: duplicate CSV column 'question'" in res.stderr
    res = flowrun("run", wf, "--output", out)
    assert res.code == 2 and "--output goes with --batch" in res.stderr
    assert not server.requests


def test_existing_output_needs_resume(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "a"}])
    out = tmp_path / "out.jsonl"
    out.write_text('{"index": 0, "status": "succeeded"}\n', encoding="utf-8")
    res = flowrun("run", wf, "--batch", data, "--output", out)
    assert res.code == 2
    assert f"error: the output {out} already exists" in res.stderr
    assert "hint: continue it with --resume" in res.stderr
    assert not server.requests


def test_json_summary_on_stdout(server, tmp_path):
    wf = write(tmp_path, DIAMOND)
    server.add(Reply(status=400, error="bad"), match="B q1")
    data = jsonl(tmp_path / "in.jsonl", [{"q": f"q{i}"} for i in range(3)])
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["batch_id"].startswith("batch-") and doc["status"] == "failed"
    assert (doc["records"], doc["succeeded"], doc["failed"], doc["skipped"]) == (3, 2, 1, 0)
    assert doc["output"] == str(out)
    assert doc["cost"]["calls"] == 7 and doc["cost"]["total_usd"] > 0
    assert doc["cost"]["by_model"]["gpt-4o-mini"]["calls"] == 7
    assert doc["failures"] == [
        {"index": 1, "line": 2, "error": "step 'b' failed: API error 400: bad"}
    ]
    total = sum(x["cost_usd"] for x in lines(out))
    assert abs(total - doc["cost"]["total_usd"]) < 1e-9


def test_without_output_lines_go_to_stdout(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "a"}, {"question": "b"}])
    res = flowrun("run", wf, "--batch", data)
    assert res.code == 0, res.stderr
    got = [json.loads(x) for x in res.stdout.splitlines()]
    assert [x["outputs"]["answer"] for x in got] == [
        "echo: Answer (plain): a",
        "echo: Answer (plain): b",
    ]
    assert "2 succeeded" in res.stderr


def test_plain_progress_lines_when_stderr_is_not_a_terminal(server, tmp_path, monkeypatch):
    monkeypatch.setenv("FLOWRUN_PROGRESS_EVERY", "0")
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(3)])
    res = flowrun("run", wf, "--batch", data, "--output", tmp_path / "out.jsonl")
    assert res.code == 0, res.stderr
    progress = [x for x in res.stderr.splitlines() if x.startswith("progress:")]
    assert len(progress) == 3
    pattern = r"progress: 3/3 records \(100%\) · 0 failed · [\d.,]+/s · \$0\.\d{6} · ETA 0s"
    assert re.fullmatch(pattern, progress[-1]), progress[-1]
    assert "\x1b[" not in res.stderr  # no terminal control codes in logs


def test_quiet_prints_nothing_but_errors(server, tmp_path):
    wf = write(tmp_path, ASK)
    data = jsonl(tmp_path / "in.jsonl", [{"question": "a"}])
    res = flowrun("run", wf, "--batch", data, "--output", tmp_path / "o.jsonl", "--quiet")
    assert (res.code, res.stdout, res.stderr) == (0, "", "")


def test_concurrency_bounds_records_in_flight(server, tmp_path):
    wf = write(tmp_path, ASK)
    flight = InFlight()
    server.default = flight.around(lambda req: Reply(content="ok"), seconds=0.05)
    data = jsonl(tmp_path / "in.jsonl", [{"question": f"q{i}"} for i in range(12)])
    res = flowrun(
        "run", wf, "--batch", data, "--output", tmp_path / "o.jsonl", "--concurrency", "3"
    )
    assert res.code == 0, res.stderr
    assert flight.most == 3


# --- the Python API ----------------------------------------------------------------------


def test_run_batch_yields_results_in_order(server, tmp_path):
    wf = load_workflow(write(tmp_path, ASK))
    server.default = lambda req: Reply(
        content=req.last_user_text[-2:], latency=0.02 * (6 - int(req.last_user_text[-1]))
    )
    records = [{"question": f"q{i}", "gold": i} for i in range(6)]
    results = list(run_batch(wf, records, concurrency=6))
    assert [r.index for r in results] == list(range(6))
    assert [r.outputs["answer"] for r in results] == [f"q{i}" for i in range(6)]
    assert [r.extra for r in results] == [{"gold": i} for i in range(6)]
    assert all(r.ok and r.cost_usd > 0 and r.line is None for r in results)


def test_arun_batch_inside_a_running_loop_and_sync_run_batch_from_a_loop(server, tmp_path):
    wf = load_workflow(write(tmp_path, ASK))

    async def main():
        got = [r.outputs["answer"] async for r in arun_batch(wf, [{"question": "x"}])]
        # the sync API from inside a running loop works too (a worker thread)
        got += [r.outputs["answer"] for r in run_batch(wf, [{"question": "y"}])]
        return got

    assert asyncio.run(main()) == ["echo: Answer (plain): x", "echo: Answer (plain): y"]


def test_run_batch_streams_an_endless_iterable(server, tmp_path):
    wf = load_workflow(write(tmp_path, ASK))
    pulled = []

    def endless():
        for i in itertools.count():
            pulled.append(i)
            yield {"question": f"q{i}"}

    results = run_batch(wf, endless(), concurrency=2)
    first = [next(results).outputs["answer"] for _ in range(5)]
    results.close()
    assert first == [f"echo: Answer (plain): q{i}" for i in range(5)]
    assert len(pulled) <= 5 + 2 * 4 + 1  # records read ahead: at most the reorder window


def test_run_batch_with_a_file_and_a_mapping(server, tmp_path):
    wf = load_workflow(write(tmp_path, ASK))
    data = jsonl(tmp_path / "in.jsonl", [{"text": "hi", "label": 1}])
    (result,) = run_batch(wf, data, mapping={"question": "${data.text}"}, inputs={"style": "s"})
    assert result.outputs == {"answer": "echo: Answer (s): hi"}
    assert result.extra == {"label": 1} and result.line == 1
