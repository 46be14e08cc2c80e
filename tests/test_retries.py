"""Retries on 429/5xx/timeouts by the SDK's own mechanism, with the step's max_retries/timeout_s."""

from __future__ import annotations

import json

from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import write

WORKFLOW = """\
version: 1
name: retried
defaults:
  model: gpt-4o-mini
  max_retries: 3
steps:
  answer:
    type: chat
    prompt: "Say hi"
    {extra}
outputs:
  answer: "{{{{ steps.answer.output }}}}"
"""


def _workflow(tmp_path, extra: str = ""):
    return write(tmp_path, WORKFLOW.format(extra=extra))


def _retry_counts(server) -> list[str | None]:
    """The SDK numbers its attempts in a header: proof that its own retry loop made them."""
    return [r.headers.get("x-stainless-retry-count") for r in server.requests]


def _stored_retries(run_id: str) -> int:
    shown = json.loads(flowrun("runs", "show", run_id, "--json").stdout)
    return shown["steps"]["answer"]["retries"]


def test_429_twice_then_success_honours_retry_after(server, tmp_path):
    server.add(Reply(status=429, retry_after=0.05, error="Rate limit reached"), times=2)
    res = flowrun("run", _workflow(tmp_path), "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"] == {"answer": "echo: Say hi"}
    assert doc["steps"]["answer"]["retries"] == 2
    assert _retry_counts(server) == ["0", "1", "2"]
    assert _stored_retries(doc["run_id"]) == 2


def test_500_twice_then_success(server, tmp_path):
    server.add(Reply(status=500, error="The server had an error"), times=2)
    res = flowrun("run", _workflow(tmp_path), "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["steps"]["answer"]["retries"] == 2
    assert doc["cost"]["calls"] == 1  # retries are one call, paid once
    assert _retry_counts(server) == ["0", "1", "2"]
    assert _stored_retries(doc["run_id"]) == 2


def test_max_retries_0_fails_at_once(server, tmp_path):
    server.add(Reply(status=429, retry_after=0.05, error="Rate limit reached"), times=5)
    res = flowrun("run", _workflow(tmp_path, "max_retries: 0"), "--json")
    assert res.code == 1
    assert len(server.requests) == 1
    error = json.loads(res.stdout)["steps"]["answer"]["error"]
    assert error == "API error 429: Rate limit reached"


def test_retries_stop_at_max_retries(server, tmp_path):
    server.add(Reply(status=503, retry_after=0.05, error="Overloaded"), times=5)
    res = flowrun("run", _workflow(tmp_path, "max_retries: 1"))
    assert res.code == 1
    assert len(server.requests) == 2
    assert "API error 503: Overloaded" in res.stderr


def test_client_errors_are_not_retried(server, tmp_path):
    server.add(Reply(status=400, error="Invalid value for 'temperature'"))
    res = flowrun("run", _workflow(tmp_path))
    assert res.code == 1
    assert len(server.requests) == 1
    assert "API error 400: Invalid value for 'temperature'" in res.stderr


def test_timeout_s_is_honoured(server, tmp_path):
    server.add(Reply(content="too late", latency=3), times=2)
    res = flowrun("run", _workflow(tmp_path, "timeout_s: 0.3\n    max_retries: 0"), "--json")
    assert res.code == 1
    assert len(server.requests) == 1
    error = json.loads(res.stdout)["steps"]["answer"]["error"]
    assert error == "the request timed out after 0.3s"


def test_timeouts_are_retried(server, tmp_path):
    server.add(Reply(content="too late", latency=3))
    res = flowrun("run", _workflow(tmp_path, "timeout_s: 0.3\n    max_retries: 1"), "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["steps"]["answer"]["retries"] == 1
    assert doc["outputs"] == {"answer": "echo: Say hi"}
    assert _retry_counts(server) == ["0", "1"]


def test_retries_of_a_call_that_finally_fails_on_429_are_recorded(server, tmp_path):
    server.add(Reply(status=429, retry_after=0.05, error="Rate limit reached"), times=5)
    res = flowrun("run", _workflow(tmp_path, "max_retries: 2"), "--json")
    assert res.code == 1
    assert _retry_counts(server) == ["0", "1", "2"]
    doc = json.loads(res.stdout)
    step = doc["steps"]["answer"]
    assert (step["error"], step["retries"], step["calls"]) == (
        "API error 429: Rate limit reached",
        2,
        0,  # no call returned: nothing paid, nothing in the cost report
    )
    assert (doc["cost"]["calls"], doc["cost"]["by_model"]) == (0, {})
    assert _stored_retries(doc["run_id"]) == 2


def test_retries_of_a_call_that_finally_times_out_are_recorded(server, tmp_path):
    server.add(Reply(content="too late", latency=2), times=3)
    res = flowrun("run", _workflow(tmp_path, "timeout_s: 0.2\n    max_retries: 1"), "--json")
    assert res.code == 1
    assert _retry_counts(server) == ["0", "1"]
    doc = json.loads(res.stdout)
    assert doc["steps"]["answer"]["error"] == "the request timed out after 0.2s"
    assert doc["steps"]["answer"]["retries"] == 1
    assert _stored_retries(doc["run_id"]) == 1
