"""Resume: after kill -9 and signals, completed steps are never called again; changed workflows."""

from __future__ import annotations

import json
import os
import signal

import pytest

from flowrun.api import resume_run
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import TWO_STEPS, only_run_id, start_flowrun, step_rows, wait_for, write


def _requests_for(server, text: str) -> int:
    return sum(
        1 for r in server.requests_to("/chat/completions") if r.last_user_text.startswith(text)
    )


def _start_and_wait_for_second(server, wf):
    """Start a run in a subprocess; return it once the first step is stored and the second is in flight."""
    server.add(Reply(content="never delivered", latency=30), match="second after")
    proc = start_flowrun("run", wf)
    wait_for(lambda: _requests_for(server, "second after") == 1, what="the second request")
    wait_for(lambda: step_rows() == {"first": "succeeded"}, what="the first step's row")
    return proc


def test_kill_9_then_resume_calls_the_completed_step_once(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    proc = _start_and_wait_for_second(server, wf)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    run_id = only_run_id()

    # the killed run never said goodbye: its row says running, but its process is gone
    listed = json.loads(flowrun("runs", "list", "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [(run_id, "interrupted")]
    killed = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    assert killed["status"] == "interrupted"
    paid = killed["steps"]["first"]["cost_usd"]  # the completed step was paid for
    assert paid > 0 and listed[0]["cost_usd"] == killed["cost_usd"] == paid
    assert f"${paid:.6f}" in flowrun("runs", "list").stdout
    assert json.loads(flowrun("runs", "list", "--status", "interrupted", "--json").stdout)

    server.add(Reply(content="second answer"), match="second after")
    res = flowrun("resume", run_id, "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["run_id"] == run_id and doc["status"] == "succeeded"
    assert doc["outputs"] == {"a": "echo: first step", "b": "second answer"}
    assert _requests_for(server, "first step") == 1
    assert _requests_for(server, "second after") == 2  # the killed call, then the resumed one
    shown = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "succeeded" and shown["outputs"] == doc["outputs"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signals_mark_the_run_interrupted(server, tmp_path, sig):
    wf = write(tmp_path, TWO_STEPS)
    proc = _start_and_wait_for_second(server, wf)
    os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=20)
    run_id = only_run_id()
    assert proc.returncode == 1
    assert "Traceback" not in err
    assert f"flowrun resume {run_id}" in err
    shown = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    assert shown["status"] == "interrupted"
    assert shown["steps"]["first"]["status"] == "succeeded"
    assert shown["cost_usd"] == shown["steps"]["first"]["cost_usd"] > 0

    server.add(Reply(content="second answer"), match="second after")
    res = flowrun("resume", run_id)
    assert res.code == 0, res.stderr
    assert "b: second answer" in res.stdout
    assert _requests_for(server, "first step") == 1


def _failed_run(server, wf) -> str:
    server.add(Reply(status=400, error="bad request"), match="second after")
    res = flowrun("run", wf)
    assert res.code == 1
    run_id = only_run_id()
    assert f"flowrun resume {run_id}" in res.stderr
    return run_id


def test_resume_a_failed_run_through_the_api(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    run_id = _failed_run(server, wf)
    result = resume_run(run_id)
    assert result.status == "succeeded"
    assert result.outputs["b"] == "echo: second after echo: first step"
    assert _requests_for(server, "first step") == 1
    assert result.cost.calls == 2  # the stored first call is part of the run's cost


def test_resume_refuses_when_a_completed_step_changed(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    run_id = _failed_run(server, wf)
    wf.write_text(TWO_STEPS.replace('"first step"', '"first step, reworded"'))
    res = flowrun("resume", run_id)
    assert res.code == 2
    assert "changed since run" in res.stderr and "first" in res.stderr and "--force" in res.stderr
    assert _requests_for(server, "first step") == 1

    forced = flowrun("resume", run_id, "--force", "--json")
    assert forced.code == 0, forced.stderr
    doc = json.loads(forced.stdout)
    assert doc["outputs"]["a"] == "echo: first step"  # the stored result is kept
    assert _requests_for(server, "first step") == 1


def test_resume_refuses_when_an_ancestor_of_a_completed_step_changed(server, tmp_path):
    three = TWO_STEPS.replace(
        "outputs:",
        '  third:\n    type: chat\n    prompt: "third after {{ steps.second.output }}"\noutputs:',
    )
    wf = write(tmp_path, three)
    server.add(Reply(status=400, error="bad request"), match="third after")
    assert flowrun("run", wf).code == 1
    wf.write_text(three.replace('"first step"', '"first step, reworded"'))
    res = flowrun("resume", only_run_id())
    assert res.code == 2
    assert "step(s) first, second" in res.stderr


def test_resume_allows_changes_that_do_not_touch_completed_steps(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    run_id = _failed_run(server, wf)
    wf.write_text(
        TWO_STEPS.replace("second after", "second, fixed, after") + '  extra: "{{ 1 + 1 }}"\n'
    )
    res = flowrun("resume", run_id, "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"] == {
        "a": "echo: first step",
        "b": "echo: second, fixed, after echo: first step",
        "extra": 2,
    }
    assert _requests_for(server, "first step") == 1


def test_resuming_a_succeeded_run_is_exit_2(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    assert flowrun("run", wf).code == 0
    res = flowrun("resume", only_run_id())
    assert res.code == 2
    assert "already succeeded; nothing to resume" in res.stderr
    assert len(server.requests) == 2


def test_resume_refuses_when_the_workflow_file_is_gone(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    run_id = _failed_run(server, wf)
    wf.unlink()
    res = flowrun("resume", run_id)
    assert res.code == 2
    assert "no longer exists" in res.stderr


WITH_TOOLS = """\
version: 1
name: with-tools
defaults:
  model: gpt-4o-mini
tools:
  lookup:
    function: mytools:lookup
    description: Find a thing.
  other:
    function: mytools:lookup
steps:
  first:
    type: chat
    prompt: "first step"
    tools: [lookup]
  second:
    type: chat
    prompt: "second after {{ steps.first.output }}"
    tools: [other]
"""


def test_resume_notices_a_changed_tool_of_a_completed_step(server, tmp_path):
    (tmp_path / "mytools.py").write_text(
        'def lookup(name: str) -> str:\n    """Look up."""\n    return name\n'
    )
    wf = write(tmp_path, WITH_TOOLS)
    run_id = _failed_run(server, wf)
    # a changed tool that only the failed step uses is fine; one the completed step uses is not
    edited = WITH_TOOLS.replace("  other:\n", "  other:\n    description: Changed.\n")
    wf.write_text(edited.replace("Find a thing.", "Find anything."))
    res = flowrun("resume", run_id)
    assert res.code == 2 and "step(s) first" in res.stderr
    wf.write_text(edited)
    res = flowrun("resume", run_id)
    assert res.code == 0, res.stderr
    assert _requests_for(server, "first step") == 1


def test_a_resume_says_which_calls_it_kept_and_how_many_it_made(server, tmp_path):
    """The cost report of a resume counts the kept steps' calls in the run's total, and says
    that this resume made only the rest (none, when only a tool step was left)."""
    (tmp_path / "checks.py").write_text(
        "import os\n\ndef check(text: str) -> str:\n"
        "    if os.environ.get('FAIL_CHECK'):\n        raise ValueError('boom')\n"
        "    return text.upper()\n",
        encoding="utf-8",
    )
    wf = write(
        tmp_path,
        TWO_STEPS.replace(
            '  second:\n    type: chat\n    prompt: "second after {{ steps.first.output }}"',
            '  second:\n    type: tool\n    function: "checks:check"\n'
            '    args:\n      text: "{{ steps.first.output }}"',
        ),
    )
    os.environ["FAIL_CHECK"] = "1"
    try:
        failed = flowrun("run", wf)
    finally:
        del os.environ["FAIL_CHECK"]
    assert failed.code == 1, failed.stderr
    run_id = only_run_id()
    wf.write_text(wf.read_text() + "# edited\n")
    res = flowrun("resume", run_id, "--force")
    assert res.code == 0, res.stderr
    assert "total: 1 call," in res.stderr  # the run's whole cost: the kept step's call
    assert "resumed: 1 step kept from before (first; 1 call" in res.stderr
    assert "this resume made 0 calls" in res.stderr
    assert _requests_for(server, "first step") == 1


PARALLEL = """\
version: 1
name: parallel
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 20
steps:
  quick:
    type: chat
    prompt: "quick step"
  slow:
    type: chat
    prompt: "slow step"
"""


def test_a_step_that_finished_just_before_the_stop_is_saved(server, tmp_path):
    """Ctrl-C lands after a step's task has finished but before the executor handled its
    wake-up: the step was paid for, so it is saved, and the resume does not ask it again."""
    import asyncio

    from flowrun.api import arun_workflow
    from flowrun.provider.client import OpenAIClient

    wf = write(tmp_path, PARALLEL)
    server.add(Reply(content="late", latency=30), match="slow step")

    async def run_and_stop() -> None:
        main = asyncio.current_task()

        class StopAfterQuick(OpenAIClient):
            async def chat(self, request, **options):
                reply = await super().chat(request, **options)
                if "quick step" in json.dumps(request):
                    # the stop comes right after the quick step's task is done (its own
                    # done-callback, the executor's wake-up, was registered first)
                    step_task = asyncio.current_task()
                    step_task.add_done_callback(lambda _t: main.cancel())
                return reply

        await arun_workflow(wf, client=StopAfterQuick())

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(run_and_stop())
    assert step_rows() == {"quick": "succeeded"}
    server.reset()
    result = resume_run(only_run_id())
    assert result.ok, result.error
    assert _requests_for(server, "quick step") == 0 and _requests_for(server, "slow step") == 1


def test_a_failed_steps_paid_calls_stay_in_the_run_total_after_a_resume(server, tmp_path):
    """A step that made a paid call and then failed (its reply broke its schema) is run again
    by each resume: every attempt was paid for, so the run's total keeps them all."""
    wf = write(
        tmp_path,
        TWO_STEPS.replace(
            '    prompt: "second after {{ steps.first.output }}"',
            '    prompt: "second after {{ steps.first.output }}. Reply in JSON."\n'
            "    response_format: json\n"
            "    output_schema: {type: object, required: [n]}\n",
        ),
    )
    server.add(Reply(content='{"m": 1}'), match="second after")
    assert flowrun("run", wf).code == 1
    run_id = only_run_id()
    first = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    attempt = first["cost_usd"] - first["steps"]["first"]["cost_usd"]
    assert attempt > 0  # the failed step's call is in the run's cost

    server.add(Reply(content='{"m": 2}'), match="second after")
    again = flowrun("resume", run_id, "--json")  # a bad reply again: fails again
    assert again.code == 1
    assert json.loads(again.stdout)["earlier_attempts_usd"] == pytest.approx(attempt)
    second = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    attempt_2 = second["steps"]["second"]["cost_usd"]
    assert attempt_2 > 0 and second["cost_usd"] == pytest.approx(first["cost_usd"] + attempt_2)

    calls_before = len(server.requests_to("/chat/completions"))
    server.add(Reply(content='{"n": 1}'), match="second after")
    res = flowrun("resume", run_id)
    assert res.code == 0, res.stderr
    assert len(server.requests_to("/chat/completions")) == calls_before + 1
    assert f"earlier attempts of the steps run again: ${attempt + attempt_2:.6f}" in res.stderr
    after = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    assert after["status"] == "succeeded"
    assert after["cost_usd"] == pytest.approx(
        first["steps"]["first"]["cost_usd"]
        + attempt
        + attempt_2
        + after["steps"]["second"]["cost_usd"]
    )
    listed = json.loads(flowrun("runs", "list", "--json").stdout)
    assert listed[0]["cost_usd"] == after["cost_usd"]
