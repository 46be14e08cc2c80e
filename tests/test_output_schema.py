"""``output_schema`` on any step: the output is validated; a violation names path and message."""

from __future__ import annotations

import json

from flowrun import run_workflow
from flowrun.testing import Reply
from tests.flow_files import make_flow
from tests.helpers import flowrun

CHAT_JSON = """\
version: 1
name: output-schema
defaults: {model: gpt-4o-mini}
steps:
  triage:
    type: chat
    response_format: json
    prompt: Triage the ticket; reply in JSON with priority and tags.
    output_schema: schemas/triage.json
outputs:
  triage: "{{ steps.triage.output }}"
"""

TRIAGE = {
    "type": "object",
    "properties": {
        "priority": {"enum": ["low", "high"]},
        "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 3},
    },
    "required": ["priority", "tags"],
}


def triage_flow(tmp_path):
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "triage.json").write_text(json.dumps(TRIAGE))
    return make_flow(tmp_path, CHAT_JSON)


def test_a_valid_output_passes(server, tmp_path):
    server.add(Reply(json={"priority": "high", "tags": ["billing"]}))
    result = run_workflow(triage_flow(tmp_path), store=False)
    assert result.status == "succeeded", result.error
    assert result.outputs["triage"] == {"priority": "high", "tags": ["billing"]}


def test_a_violation_fails_the_step_with_each_path_and_message(server, tmp_path):
    server.add(Reply(json={"priority": "urgent", "tags": ["a", "b", 3, "d"]}))
    res = flowrun("run", triage_flow(tmp_path), "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["steps"]["triage"]["error"] == (
        "output does not match output_schema: "
        "/priority: 'urgent' is not one of ['low', 'high']; "
        "/tags: ['a', 'b', 3, 'd'] is too long; "
        "/tags/2: 3 is not of type 'string'"
    )
    assert doc["steps"]["triage"]["output"] is None
    assert "step 'triage' failed: output does not match output_schema: /priority:" in res.stderr
    assert len(server.requests) == 1  # no repair loop outside extract


TOOL_AND_EMBED = """\
version: 1
name: output-schema-any-step
inputs:
  n: {type: integer}
steps:
  square:
    type: tool
    function: TOOLS:square
    args: {n: "{{ inputs.n }}"}
    output_schema: {type: integer, maximum: 100}
  vector:
    type: embed
    input: hello
    dimensions: 4
    output_schema: {type: array, minItems: 4, maxItems: 4}
outputs:
  square: "{{ steps.square.output }}"
"""


def test_output_schema_applies_to_tool_and_embed_steps(server, tmp_path):
    flow = make_flow(tmp_path, TOOL_AND_EMBED, "def square(n: int) -> int:\n    return n * n\n")
    ok = run_workflow(flow, {"n": 9}, store=False)
    assert ok.status == "succeeded", ok.error
    assert ok.outputs == {"square": 81}
    too_big = run_workflow(flow, {"n": 11}, store=False)
    assert too_big.error == (
        "step 'square' failed: output does not match output_schema: "
        "(root): 121 is greater than the maximum of 100"
    )


def test_output_schema_on_foreach_checks_each_item_and_names_its_index(server, tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: per-item
        defaults: {model: gpt-4o-mini}
        steps:
          rate:
            type: chat
            foreach: "{{ ['good', 'bad', 'ugly'] }}"
            response_format: json
            prompt: "Rate {{ item }} in JSON"
            output_schema:
              type: object
              properties: {score: {type: integer, minimum: 1, maximum: 5}}
              required: [score]
        """,
    )
    server.add(Reply(json={"score": 4}), match="Rate good")
    server.add(Reply(json={"score": 9}), match="Rate bad")
    server.add(Reply(json={"score": 2}), match="Rate ugly")
    result = run_workflow(flow, store=False)
    assert result.error == (
        "step 'rate' failed: item 1: output does not match output_schema: "
        "/score: 9 is greater than the maximum of 5"
    )


def test_an_output_schema_that_is_not_a_schema_is_a_validation_error(tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: bad-output-schema
        steps:
          s:
            type: tool
            function: TOOLS:square
            args: {n: 2}
            output_schema: {type: integr}
          t:
            type: tool
            function: TOOLS:square
            args: {n: 2}
            output_schema: schemas/missing.json
        """,
        "def square(n: int) -> int:\n    return n * n\n",
    )
    res = flowrun("validate", flow)
    assert res.code == 2
    lines = [line.replace(str(flow), "wf.yaml") for line in res.stderr.splitlines()]
    assert len(lines) == 2
    assert lines[0].startswith("wf.yaml:8:20: ") and "'integr'" in lines[0]
    assert lines[1].startswith("wf.yaml:13:20: ") and "schemas/missing.json" in lines[1]
