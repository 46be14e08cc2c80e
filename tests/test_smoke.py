"""End-to-end smoke tests: the summarize example through the CLI and the Python API."""

from __future__ import annotations

import json

from flowrun import load_workflow, run_workflow
from flowrun.testing import Reply
from tests.helpers import WORKFLOWS, flowrun


def test_run_summarize_via_cli_json(server):
    server.add(Reply(content="A short summary."), match="Summarize in one sentence")
    server.add(Reply(content="The Title"), match="Title for")
    res = flowrun("run", WORKFLOWS / "summarize.yaml", "-i", "text=Some long text", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "succeeded"
    assert doc["outputs"] == {"summary": "A short summary.", "title": "The Title"}
    assert doc["cost"]["calls"] == 2
    assert doc["cost"]["total_usd"] > 0
    assert set(doc["steps"]) == {"summary", "title"}


def test_input_templates_are_data_not_templates(server):
    result = run_workflow(load_workflow(WORKFLOWS / "summarize.yaml"), {"text": "{{ 7*7 }}"})
    assert result.status == "succeeded"
    first = server.requests_to("/chat/completions")[0]
    assert first.body["messages"][-1]["content"] == "{{ 7*7 }}"
