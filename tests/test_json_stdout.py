"""``--json``: stdout holds only the JSON document, whatever the workflow's tools print."""

from __future__ import annotations

import json

from flowrun.testing import Reply, ToolCall
from tests.flow_files import make_flow
from tests.helpers import flowrun

NOISY = """\
import asyncio

print("importing the noisy module")


def shout(text: str) -> str:
    print("sync tool says", text)
    return text.upper()


async def whisper(text: str) -> str:
    print("async tool says", text)
    await asyncio.sleep(0)
    return text.lower()
"""

FLOW = """\
version: 1
name: noisy
inputs: {text: {type: string, default: Hello}}
defaults: {model: gpt-4o-mini}
tools:
  shout: {function: "TOOLS:shout"}
steps:
  loud: {type: tool, function: "TOOLS:shout", args: {text: "{{ inputs.text }}"}}
  soft: {type: tool, function: "TOOLS:whisper", args: {text: "{{ inputs.text }}"}}
  chat: {type: chat, prompt: "Shout it", tools: [shout]}
outputs:
  loud: "{{ steps.loud.output }}"
  soft: "{{ steps.soft.output }}"
"""

PRINTED = ("importing the noisy module", "sync tool says Hello", "async tool says Hello")


def test_what_tools_print_goes_to_stderr_with_json(server, tmp_path):
    server.add(Reply(tool_calls=[ToolCall("shout", {"text": "again"})]))
    res = flowrun("run", make_flow(tmp_path, FLOW, NOISY), "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)  # nothing but the document
    assert doc["outputs"] == {"loud": "HELLO", "soft": "hello"}
    for line in (*PRINTED, "sync tool says again"):
        assert line in res.stderr.splitlines()


def test_without_json_what_tools_print_stays_on_stdout(server, tmp_path):
    server.add(Reply(tool_calls=[ToolCall("shout", {"text": "again"})]))
    res = flowrun("run", make_flow(tmp_path, FLOW, NOISY))
    assert res.code == 0, res.stderr
    assert "sync tool says Hello" in res.stdout.splitlines()


def test_a_batch_with_json_prints_only_its_summary_on_stdout(server, tmp_path):
    records = tmp_path / "records.jsonl"
    records.write_text('{"text": "One"}\n{"text": "Two"}\n')
    out = tmp_path / "out.jsonl"
    server.add(Reply(content="done"), times=None)
    flow = make_flow(tmp_path, FLOW.replace("tools: [shout]", "tools: []"), NOISY)
    res = flowrun("run", flow, "--batch", records, "--output", out, "--json")
    assert res.code == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (summary["succeeded"], summary["failed"]) == (2, 0)
    assert "sync tool says One" in res.stderr.splitlines()
    assert [json.loads(line)["outputs"]["loud"] for line in out.read_text().splitlines()] == [
        "ONE",
        "TWO",
    ]


def test_resume_with_json_keeps_stdout_for_the_document(server, tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: resumed
        steps:
          chat: {type: chat, model: gpt-4o-mini, prompt: "Say it"}
          after: {type: tool, function: "TOOLS:shout", args: {text: "{{ steps.chat.output }}"}}
        outputs:
          loud: "{{ steps.after.output }}"
        """,
        NOISY,
    )
    server.add(Reply(status=400, error="bad request"))
    failed = flowrun("run", flow, "--json")
    assert failed.code == 1
    res = flowrun("resume", json.loads(failed.stdout)["run_id"], "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["outputs"] == {"loud": "ECHO: SAY IT"}
    assert "sync tool says echo: Say it" in res.stderr.splitlines()
