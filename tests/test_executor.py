"""The executor, end to end against the loopback server: scheduling order, concurrency, failure."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from flowrun import load_workflow, run_workflow
from flowrun.testing import Reply
from tests.helpers import flowrun


def write(tmp_path: Path, text: str, name: str = "wf.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def by_prompt(server, marker: str):
    """The one chat request whose last user message contains ``marker``."""
    found = [r for r in server.requests_to("/chat/completions") if marker in r.last_user_text]
    assert len(found) == 1, f"{marker!r}: {len(found)} requests"
    return found[0]


CHAIN_AND_SLOW = """\
    version: 1
    name: chain
    defaults: {model: gpt-4o-mini}
    steps:
      a: {type: chat, prompt: "step-a"}
      b: {type: chat, prompt: "step-b after {{ steps.a.output }}"}
      c: {type: chat, prompt: "step-c"}
    outputs:
      b: "{{ steps.b.output }}"
      c: "{{ steps.c.output }}"
"""


def test_a_step_starts_when_its_own_dependencies_finish_not_level_by_level(server, tmp_path):
    server.add(Reply(content="A", latency=0.05), match="step-a")
    server.add(Reply(content="C", latency=0.5), match="step-c")
    server.add(Reply(content="B"), match="step-b")
    result = run_workflow(load_workflow(write(tmp_path, CHAIN_AND_SLOW)), store=False)
    assert result.status == "succeeded"
    assert result.outputs == {"b": "B", "c": "C"}
    a, b, c = (by_prompt(server, f"step-{x}") for x in "abc")
    assert b.last_user_text == "step-b after A"
    # b only waited for a: its request arrived while c (same level as a) was still running
    assert a.replied_at <= b.received_at < c.replied_at
    order = [r.last_user_text.split()[0] for r in server.requests_to("/chat/completions")]
    assert order.index("step-b") > order.index("step-a")


def test_independent_steps_run_concurrently(server, tmp_path):
    server.add(Reply(content="slow", latency=0.3), times=None)
    path = write(
        tmp_path,
        """\
        version: 1
        name: wide
        defaults: {model: gpt-4o-mini}
        steps:
          one: {type: chat, prompt: "1"}
          two: {type: chat, prompt: "2"}
          three: {type: chat, prompt: "3"}
          four: {type: chat, prompt: "4"}
        """,
    )
    result = run_workflow(load_workflow(path), store=False)
    assert result.status == "succeeded"
    requests = server.requests_to("/chat/completions")
    assert len(requests) == 4
    # every request arrived before the first reply went out: they were all in flight at once
    assert max(r.received_at for r in requests) < min(r.replied_at for r in requests)
    assert result.duration_s < 1.0  # sequential would be >= 1.2 s; generous bound


FAILING = """\
    version: 1
    name: failing
    defaults: {model: gpt-4o-mini, max_retries: 0}
    steps:
      bad: {type: chat, prompt: "bad-step"}
      slow: {type: chat, prompt: "slow-step"}
      after_bad: {type: chat, prompt: "after-bad {{ steps.bad.output }}"}
      after_slow: {type: chat, prompt: "after-slow {{ steps.slow.output }}"}
    outputs:
      x: "{{ steps.after_slow.output }}"
"""


def test_a_failing_step_stops_new_steps_and_lets_in_flight_ones_finish(server, tmp_path):
    server.add(Reply(status=500, error="the model is on fire"), match="bad-step")
    server.add(Reply(content="slow done", latency=0.3), match="slow-step")
    res = flowrun("run", write(tmp_path, FAILING), "--json")
    assert res.code == 1
    assert "Traceback" not in res.output
    doc = json.loads(res.stdout)
    assert doc["status"] == "failed"
    assert doc["failed_step"] == "bad"
    assert doc["steps"]["bad"]["status"] == "failed"
    assert "500" in doc["steps"]["bad"]["error"]
    assert doc["steps"]["slow"] == doc["steps"]["slow"] | {
        "status": "succeeded",
        "output": "slow done",
    }
    assert "after_bad" not in doc["steps"] and "after_slow" not in doc["steps"]
    prompts = sorted(r.last_user_text for r in server.requests_to("/chat/completions"))
    assert prompts == ["bad-step", "slow-step"]  # no retry, nothing started after the failure
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1
    assert errors[0].startswith("error: step 'bad' failed: API error 500: the model is on fire")


def test_a_failing_step_in_the_human_output_names_the_step(server, tmp_path):
    server.add(Reply(status=500, error="the model is on fire"), match="bad-step")
    res = flowrun("run", write(tmp_path, FAILING))
    assert res.code == 1
    assert res.stdout == ""
    assert "Traceback" not in res.stderr
    assert "error: step 'bad' failed: API error 500: the model is on fire" in res.stderr
    assert "hint: completed steps are saved" in res.stderr


def test_an_api_400_fails_the_run_through_the_python_api(server, tmp_path):
    server.add(Reply(status=400, error="Invalid value for 'messages'"), match="bad-step")
    server.add(Reply(content="slow done", latency=0.3), match="slow-step")
    result = run_workflow(load_workflow(write(tmp_path, FAILING)), store=False)
    assert result.status == "failed"
    assert not result.ok
    assert result.failed_step == "bad"
    assert result.error == "step 'bad' failed: API error 400: Invalid value for 'messages'"
    assert result.steps["slow"].status == "succeeded"
    assert set(result.steps) == {"bad", "slow"}
    assert result.outputs == {}
    assert len(server.requests_to("/chat/completions")) == 2  # a 400 is never retried


def test_a_skipped_dependency_still_runs_its_dependents_with_null(server, tmp_path):
    path = write(
        tmp_path,
        """\
        version: 1
        name: skip
        inputs: {go: {type: boolean, default: false}}
        defaults: {model: gpt-4o-mini}
        steps:
          maybe: {type: chat, when: "{{ inputs.go }}", prompt: "maybe"}
          after: {type: chat, prompt: "saw {{ steps.maybe.output }} {{ steps.maybe.skipped }}"}
        outputs: {after: "{{ steps.after.output }}"}
        """,
    )
    result = run_workflow(load_workflow(path), store=False)
    assert result.status == "succeeded"
    assert result.steps["maybe"].status == "skipped"
    assert result.outputs == {"after": "echo: saw None True"}
