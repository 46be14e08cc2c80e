"""A reply without usage is never $0: it is counted locally, marked approximate, and a budget
charges it its reserved worst case; impossible usage is a server error, not a number to add."""

from __future__ import annotations

import json

import pytest
import tiktoken

from flowrun import load_workflow, run_workflow
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import write

ENC = tiktoken.get_encoding("o200k_base")  # gpt-4o-mini

ONE = """\
version: 1
name: one
steps:
  answer: {{type: chat, model: gpt-4o-mini, max_completion_tokens: 20, prompt: "Say hi", {extra}}}
"""


def one(tmp_path, extra: str = "temperature: 0") -> str:
    return write(tmp_path, ONE.format(extra=extra))


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "streamed"])
def test_a_reply_without_usage_is_counted_locally_and_marked_approximate(server, tmp_path, stream):
    server.default = lambda req: Reply(content="Hello there, friend", no_usage=True)
    res = flowrun("run", one(tmp_path, f"stream: {str(stream).lower()}"), "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    step = doc["steps"]["answer"]
    # the request as sent (3 + 3 per message + text) and the reply, with tiktoken
    assert step["usage"]["prompt_tokens"] == 3 + 3 + len(ENC.encode("Say hi"))
    assert step["usage"]["completion_tokens"] == len(ENC.encode("Hello there, friend"))
    assert step["approximate_usage"] is True and step["cost_usd"] > 0
    assert doc["cost"]["approximate_calls"] == 1 and doc["cost"]["total_usd"] > 0

    text = flowrun("run", one(tmp_path, f"stream: {str(stream).lower()}"))
    assert "~: approximate: 1 call came back without usage" in text.stderr
    assert "~$" in text.stderr


def test_a_reply_with_usage_is_not_marked(server, tmp_path):
    res = flowrun("run", one(tmp_path), "--json")
    doc = json.loads(res.stdout)
    assert "approximate_usage" not in doc["steps"]["answer"]
    assert doc["cost"]["approximate_calls"] == 0
    assert "approximate" not in flowrun("run", one(tmp_path)).stderr


def test_a_budget_charges_a_reply_without_usage_its_worst_case(server, tmp_path):
    """A $0.00005 budget used to let all 20 calls through when replies carried no usage."""
    server.default = lambda req: Reply(content="ok", no_usage=True)
    wf = write(
        tmp_path,
        """\
version: 1
name: many
inputs:
  items: {type: array}
steps:
  each:
    type: chat
    model: gpt-4o-mini
    max_completion_tokens: 20
    foreach: "{{ inputs.items }}"
    max_concurrency: 1
    prompt: "Answer {{ item }}"
""",
    )
    result = run_workflow(
        load_workflow(wf), {"items": [f"q{i}" for i in range(20)]}, max_cost=0.00005, store=False
    )
    assert result.status == "failed" and "budget" in (result.error or "")
    sent = len(server.requests_to("/chat/completions"))
    # each call was charged its worst case: ~12 prompt + 20 completion tokens of gpt-4o-mini
    worst = (12 * 0.15 + 20 * 0.60) / 1e6
    assert 0 < sent <= 0.00005 // worst < 20


@pytest.mark.parametrize(
    "usage",
    [{"prompt_tokens": -5}, {"completion_tokens": 10**12}, {"cached_tokens": -1}],
    ids=["negative", "absurd", "negative-cached"],
)
def test_impossible_usage_is_a_server_error_not_a_cost(server, tmp_path, usage):
    server.add(Reply(content="hi", usage=usage))
    res = flowrun("run", one(tmp_path), "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    error = doc["steps"]["answer"]["error"]
    assert "the server reported impossible usage" in error
    assert doc["cost"]["total_usd"] == 0
