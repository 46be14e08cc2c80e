"""The Python API: run_workflow from plain code and from inside an event loop, arun_workflow."""

from __future__ import annotations

import asyncio
import textwrap
import threading

import pytest

import flowrun
from flowrun import arun_workflow, load_workflow, run_workflow
from flowrun.errors import UsageError
from flowrun.testing import Reply
from tests.helpers import WORKFLOWS

SUMMARIZE = WORKFLOWS / "summarize.yaml"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def script(server) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 10}
    server.add(Reply(content="Short.", usage=usage), match="Summarize")
    server.add(Reply(content="Title", usage=usage), match="Title for")


def check_result(result, server) -> None:
    assert result.status == "succeeded" and result.ok
    assert result.outputs == {"summary": "Short.", "title": "Title"}
    assert list(result.steps) == ["summary", "title"]
    assert result.steps["title"].output == "Title"
    assert result.steps["summary"].usage.prompt_tokens == 100
    assert result.cost.calls == 2
    assert result.cost.total_usd == pytest.approx(2 * (100 * 0.15 + 10 * 0.60) / 1e6)
    assert len(server.requests_to("/chat/completions")) == 2


def test_run_workflow_from_plain_code(server):
    script(server)
    wf = load_workflow(SUMMARIZE)
    check_result(run_workflow(wf, inputs={"text": "A long text."}), server)


def test_run_workflow_accepts_a_path(server):
    script(server)
    check_result(run_workflow(str(SUMMARIZE), {"text": "A long text."}, store=False), server)


def test_run_workflow_inside_a_running_event_loop(server):
    script(server)

    async def app() -> flowrun.RunResult:
        loop_thread = threading.get_ident()
        result = run_workflow(SUMMARIZE, {"text": "x"}, store=False)  # sync API, loop running
        assert threading.get_ident() == loop_thread
        return result

    check_result(asyncio.run(app()), server)


@pytest.mark.anyio
async def test_sync_api_called_from_an_async_test(server):
    script(server)
    check_result(run_workflow(SUMMARIZE, {"text": "x"}, store=False), server)


@pytest.mark.anyio
async def test_arun_workflow_awaited_runs_on_the_callers_loop(server):
    script(server)
    other = asyncio.create_task(asyncio.sleep(0.01))  # the loop keeps serving other tasks
    result = await arun_workflow(load_workflow(SUMMARIZE), {"text": "x"}, store=False)
    await other
    check_result(result, server)


@pytest.mark.anyio
async def test_concurrent_arun_workflow_calls_share_the_loop(server):
    server.add(lambda req: Reply(content=req.last_user_text.upper()), times=None)
    results = await asyncio.gather(
        *(arun_workflow(SUMMARIZE, {"text": f"text {i}"}, store=False) for i in range(5))
    )
    assert [r.outputs["summary"] for r in results] == [f"TEXT {i}" for i in range(5)]


def test_invalid_inputs_raise_usage_error(server):
    with pytest.raises(UsageError) as missing:
        run_workflow(SUMMARIZE, {})
    assert missing.value.message == "missing required input 'text'"  # no CLI flag in the API
    with pytest.raises(UsageError) as null:
        run_workflow(SUMMARIZE, {"text": None})
    assert null.value.message.startswith("input 'text' is required and cannot be null")
    with pytest.raises(UsageError, match="input 'text' must be of type string, got int"):
        run_workflow(SUMMARIZE, {"text": 5})
    assert server.requests == []


def test_a_failed_run_is_a_result_not_an_exception(server, tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: f
            defaults: {model: gpt-4o-mini, max_retries: 0}
            steps:
              s: {type: chat, prompt: hi}
            """
        )
    )
    server.add(Reply(status=500))
    result = run_workflow(path, store=False)
    assert (result.status, result.failed_step) == ("failed", "s")
    assert result.error.startswith("step 's' failed: API error 500")
    assert result.to_json()["status"] == "failed"


def test_every_public_name_resolves():
    for name in ("load_workflow", "run_workflow", "arun_workflow", "estimate_workflow"):
        assert name in flowrun.__all__
    for name in flowrun.__all__:
        assert getattr(flowrun, name) is not None, name


def test_estimate_workflow_from_python(server):
    report = flowrun.estimate_workflow(load_workflow(SUMMARIZE), {"text": "hello"})
    assert set(report.steps) == {"summary", "title"}
    assert report.total_usd > 0
    assert server.requests == []


def test_python_api_errors_name_api_settings_not_cli_flags(server, monkeypatch):
    """What the Python API raises speaks its own words (the CLI translates them to flags)."""
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(UsageError) as no_key:
        run_workflow(SUMMARIZE, {"text": "hi"}, store=False)
    assert "client=MockClient() (flowrun.provider.mock)" in no_key.value.hint
    with pytest.raises(UsageError) as missing:
        run_workflow(SUMMARIZE, {}, store=False)
    for error in (no_key.value, missing.value):
        assert " --" not in " ".join(error.lines()), error.lines()


def test_a_workflow_run_again_after_its_settings_change_sends_the_new_ones(server):
    """A run looks each step's settings up once and keeps them for the run only: the same
    loaded workflow run again after a change (here by the Python API) sends the new ones."""
    script(server)
    wf = load_workflow(SUMMARIZE)
    run_workflow(wf, {"text": "x"}, store=False)
    wf.spec.defaults.max_completion_tokens = 77
    wf.spec.steps["title"].temperature = 0.5
    run_workflow(wf, {"text": "x"}, store=False)
    sent = [r.body for r in server.requests_to("/chat/completions")]
    assert [b["max_completion_tokens"] for b in sent] == [200, 200, 77, 77]
    assert [b.get("temperature") for b in sent] == [None, None, None, 0.5]
