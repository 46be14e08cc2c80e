"""The ``flowrun_server`` fixture that flowrun's pytest plugin gives users' own test suites."""

from __future__ import annotations

from flowrun import load_workflow, run_workflow
from flowrun.testing import Reply
from tests.helpers import WORKFLOWS


def test_flowrun_server_fixture_runs_a_users_workflow(flowrun_server):
    flowrun_server.add(Reply(content="One line."), match="Summarize")
    flowrun_server.add(Reply(content="A Title"), match="Title for")
    result = run_workflow(
        load_workflow(WORKFLOWS / "summarize.yaml"), {"text": "words"}, store=False
    )
    assert result.status == "succeeded"
    assert result.outputs == {"summary": "One line.", "title": "A Title"}
    assert len(flowrun_server.requests_to("/chat/completions")) == 2
