"""The ``extract`` step: strict structured output, JSON-mode fallback, repairs and refusals."""

from __future__ import annotations

import json

import pytest

from flowrun import run_workflow
from flowrun.provider.strict_schema import NotStrictCompatible, drop_added_nulls, strict_copy
from flowrun.testing import Reply
from tests.flow_files import make_flow
from tests.helpers import flowrun

TICKET_SCHEMA = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "urgent": {"type": "boolean"},
        "summary": {"type": "string", "maxLength": 80},
        "order_ids": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["category", "urgent"],
}

STRICT_TICKET = {
    "type": "object",
    "properties": {
        "category": {"type": "string", "enum": ["billing", "bug", "other"]},
        "urgent": {"type": "boolean"},
        "summary": {"type": ["string", "null"]},
        "order_ids": {"type": ["array", "null"], "items": {"type": "string"}},
    },
    "required": ["category", "urgent", "summary", "order_ids"],
    "additionalProperties": False,
}

FROM_FILE = """\
version: 1
name: classify
inputs:
  ticket: {type: string}
defaults: {model: gpt-4o-mini}
steps:
  classify:
    type: extract
    system: You triage support tickets.
    prompt: "Classify this ticket: {{ inputs.ticket }}"
    schema: schemas/ticket.json
outputs:
  ticket: "{{ steps.classify.output }}"
"""


def ticket_flow(tmp_path, text: str = FROM_FILE, schema: dict | None = None):
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "ticket.json").write_text(json.dumps(schema or TICKET_SCHEMA))
    return make_flow(tmp_path, text)


def test_a_schema_file_is_sent_as_a_strict_json_schema(server, tmp_path):
    server.add(
        Reply(json={"category": "bug", "urgent": True, "summary": None, "order_ids": ["A1"]})
    )
    res = flowrun("run", ticket_flow(tmp_path), "-i", "ticket=App crashes", "--json")
    assert res.code == 0, res.stderr
    (request,) = server.requests_to("/chat/completions")
    assert request.body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "classify", "schema": STRICT_TICKET, "strict": True},
    }
    assert request.messages == [
        {"role": "system", "content": "You triage support tickets."},
        {"role": "user", "content": "Classify this ticket: App crashes"},
    ]
    # the null strict mode forced for the optional summary is dropped again
    assert json.loads(res.stdout)["outputs"]["ticket"] == {
        "category": "bug",
        "urgent": True,
        "order_ids": ["A1"],
    }


INLINE_MAP = """\
version: 1
name: scores
defaults: {model: gpt-4o-mini}
steps:
  scores:
    type: extract
    prompt: Score each product from 1 to 5.
    schema:
      type: object
      properties:
        scores:
          type: object
          additionalProperties: {type: integer, minimum: 1, maximum: 5}
      required: [scores]
"""


def test_a_schema_strict_mode_cannot_express_falls_back_to_json_mode(server, tmp_path):
    server.add(Reply(json={"scores": {"mug": 4, "pen": 2}}))
    result = run_workflow(make_flow(tmp_path, INLINE_MAP), store=False)
    assert result.status == "succeeded", result.error
    assert result.steps["scores"].output == {"scores": {"mug": 4, "pen": 2}}
    (request,) = server.requests_to("/chat/completions")
    assert request.body["response_format"] == {"type": "json_object"}
    schema = {
        "type": "object",
        "properties": {
            "scores": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 5},
            }
        },
        "required": ["scores"],
    }
    assert request.messages == [
        {
            "role": "system",
            "content": "Reply with one JSON object that validates against this JSON schema:\n"
            + json.dumps(schema),
        },
        {"role": "user", "content": "Score each product from 1 to 5."},
    ]


MODELS = """
from typing import Optional

from pydantic import BaseModel, Field


class Line(BaseModel):
    description: str
    amount: float = Field(description="Line total in the invoice currency")


class Invoice(BaseModel):
    vendor: str
    total: float
    due_date: Optional[str] = None
    lines: list[Line]
"""

PYDANTIC_FLOW = """\
version: 1
name: invoice
defaults: {model: gpt-4o-mini}
steps:
  invoice:
    type: extract
    prompt: "Extract the invoice: ACME, 2 x widgets 10 EUR"
    schema: TOOLS:Invoice
"""


def test_a_pydantic_model_is_the_schema(server, tmp_path):
    reply = {
        "vendor": "ACME",
        "total": 20,
        "due_date": None,
        "lines": [{"description": "widgets", "amount": 20}],
    }
    server.add(Reply(json=reply))
    result = run_workflow(make_flow(tmp_path, PYDANTIC_FLOW, MODELS), store=False)
    assert result.status == "succeeded", result.error
    assert result.steps["invoice"].output == reply  # due_date accepts null: kept
    (request,) = server.requests_to("/chat/completions")
    assert request.body["response_format"]["json_schema"]["schema"] == {
        "$defs": {
            "Line": {
                "type": "object",
                "title": "Line",
                "properties": {
                    "description": {"type": "string", "title": "Description"},
                    "amount": {
                        "type": "number",
                        "title": "Amount",
                        "description": "Line total in the invoice currency",
                    },
                },
                "required": ["description", "amount"],
                "additionalProperties": False,
            }
        },
        "type": "object",
        "title": "Invoice",
        "properties": {
            "vendor": {"type": "string", "title": "Vendor"},
            "total": {"type": "number", "title": "Total"},
            "due_date": {
                "anyOf": [{"type": "string"}, {"type": "null"}],
                "title": "Due Date",  # (no default: strict mode rejects it)
            },
            "lines": {"type": "array", "title": "Lines", "items": {"$ref": "#/$defs/Line"}},
        },
        "required": ["vendor", "total", "due_date", "lines"],
        "additionalProperties": False,
    }


def test_an_invalid_reply_is_repaired_on_the_second_try(server, tmp_path):
    server.add(Reply(json={"category": "outage", "urgent": "yes"}))
    server.add(Reply(json={"category": "bug", "urgent": True, "summary": "Crash"}))
    result = run_workflow(ticket_flow(tmp_path), {"ticket": "App crashes"}, store=False)
    assert result.status == "succeeded", result.error
    assert result.steps["classify"].output == {
        "category": "bug",
        "urgent": True,
        "summary": "Crash",
    }
    first, second = server.requests_to("/chat/completions")
    assert second.messages[: len(first.messages)] == first.messages
    assert second.messages[len(first.messages) :] == [
        {"role": "assistant", "content": '{"category": "outage", "urgent": "yes"}'},
        {
            "role": "user",
            "content": "Your reply does not match the required JSON schema:\n"
            "- /category: 'outage' is not one of ['billing', 'bug', 'other']\n"
            "- /urgent: 'yes' is not of type 'boolean'\n"
            "Reply again with the corrected JSON only.",
        },
    ]
    assert second.body["response_format"] == first.body["response_format"]
    assert len(result.steps["classify"].calls) == 2


def test_reply_that_is_not_json_is_repaired_too(server, tmp_path):
    server.add(Reply(content='{"category": "bug", "urgent": tru'))
    server.add(Reply(json={"category": "bug", "urgent": True}))
    result = run_workflow(ticket_flow(tmp_path), {"ticket": "x"}, store=False)
    assert result.status == "succeeded", result.error
    repair = server.requests_to("/chat/completions")[1].messages[-1]["content"]
    assert repair.splitlines()[1] == (
        "- the reply is not valid JSON: Expecting value: line 1 column 31 (char 30)"
    )


@pytest.mark.parametrize("max_repairs", [None, 0, 3])
def test_extraction_gives_up_after_max_repairs(server, tmp_path, max_repairs):
    text = FROM_FILE
    if max_repairs is not None:
        text = FROM_FILE.replace(
            "    schema: schemas/ticket.json\n",
            f"    schema: schemas/ticket.json\n    max_repairs: {max_repairs}\n",
        )
    server.add(Reply(json={"category": "bug"}), times=None)
    res = flowrun("run", ticket_flow(tmp_path, text), "-i", "ticket=x", "--json")
    assert res.code == 1
    repairs = 2 if max_repairs is None else max_repairs
    assert len(server.requests_to("/chat/completions")) == repairs + 1
    doc = json.loads(res.stdout)
    every = "" if repairs == 0 else f"replies 1-{repairs + 1}: "
    assert doc["steps"]["classify"]["error"] == (
        f"the reply did not match the schema after {repairs} repair(s): "
        f"{every}(root): 'urgent' is a required property"
    )
    assert doc["steps"]["classify"]["calls"] == repairs + 1
    assert doc["cost"]["calls"] == repairs + 1
    assert (
        "step 'classify' failed: the reply did not match the schema after "
        f"{repairs} repair(s)" in res.stderr
    )


def test_a_refusal_fails_the_step_with_the_refusal_text(server, tmp_path):
    server.add(Reply(refusal="I can't help with that request."))
    res = flowrun("run", ticket_flow(tmp_path), "-i", "ticket=x", "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["steps"]["classify"]["error"] == "the model refused: I can't help with that request."
    assert len(server.requests) == 1


# --- the strict conversion itself ------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ({"type": "array", "items": {"type": "string"}}, "the root of a strict schema"),
        ({"type": "object"}, "an object without properties"),
        (
            {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}]}}},
            "does not support 'oneOf'",
        ),
        (
            {
                "type": "object",
                "properties": {"m": {"type": "object", "additionalProperties": True}},
            },
            "'additionalProperties' schemas",
        ),
        (
            {
                "type": "object",
                "properties": {"a": {"allOf": [{"type": "string"}, {"minLength": 2}]}},
            },
            "'allOf' with several schemas",
        ),
        (
            {"type": "object", "properties": {"a": {"$ref": "other.json#/x", "description": "d"}}},
            "external $ref",
        ),
        ({"type": "object", "properties": {"x": True}}, "every sub-schema to be an object"),
        ({"type": "object", "properties": {"x": {}}}, "a type for every value"),
        (
            {"type": "object", "properties": {"x": {"description": "anything"}}},
            "a type for every value",
        ),
        ({"type": "object", "properties": {"x": {"type": "array"}}}, "'items' for every array"),
        (
            {"type": "object", "properties": {"x": {"type": ["array", "null"]}}},
            "'items' for every array",
        ),
    ],
)
def test_schemas_strict_mode_cannot_express_are_refused_with_a_reason(schema, why):
    with pytest.raises(NotStrictCompatible, match=why.replace("$", r"\$")):
        strict_copy(schema)


def test_refs_with_siblings_are_inlined_and_nested_optional_fields_become_nullable():
    schema = {
        "$defs": {
            "Who": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "email": {"type": "string"}},
                "required": ["name"],
            }
        },
        "type": "object",
        "properties": {"customer": {"$ref": "#/$defs/Who", "description": "The customer"}},
        "required": ["customer"],
    }
    who_strict = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "email": {"type": ["string", "null"]}},
        "required": ["name", "email"],
        "additionalProperties": False,
    }
    assert strict_copy(schema) == {
        "$defs": {"Who": who_strict},
        "type": "object",
        "properties": {"customer": {**who_strict, "description": "The customer"}},
        "required": ["customer"],
        "additionalProperties": False,
    }
    reply = {"customer": {"name": "Ann", "email": None}}
    assert drop_added_nulls(reply, schema) == {"customer": {"name": "Ann"}}


ARRAY_ROOT = """\
version: 1
name: tags
defaults: {model: gpt-4o-mini}
steps:
  tags:
    type: extract
    prompt: Tag this text.
    schema: {type: array, items: ITEMS, minItems: 1}
outputs:
  tags: "{{ steps.tags.output }}"
"""


def test_an_array_schema_is_asked_for_inside_an_object_and_unwrapped(server, tmp_path):
    server.add(Reply(json={"items": ["red", "blue"]}))
    flow = make_flow(tmp_path, ARRAY_ROOT.replace("ITEMS", "{type: string}"))
    result = run_workflow(flow, store=False)
    assert result.status == "succeeded", result.error
    assert result.steps["tags"].output == ["red", "blue"]
    (request,) = server.requests_to("/chat/completions")
    assert request.body["response_format"]["json_schema"]["schema"] == {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {"type": "string"}, "minItems": 1}},
        "required": ["items"],
        "additionalProperties": False,
    }


def test_an_array_schema_in_json_mode_is_wrapped_and_repaired_inside(server, tmp_path):
    server.add(Reply(json={"items": []}))
    server.add(Reply(json={"items": [1, "two"]}))
    flow = make_flow(tmp_path, ARRAY_ROOT.replace("ITEMS", "{}"))  # typeless: no strict mode
    result = run_workflow(flow, store=False)
    assert result.status == "succeeded", result.error
    assert result.steps["tags"].output == [1, "two"]
    first, second = server.requests_to("/chat/completions")
    assert first.body["response_format"] == {"type": "json_object"}
    wrapped = {
        "type": "object",
        "properties": {"items": {"type": "array", "items": {}, "minItems": 1}},
        "required": ["items"],
        "additionalProperties": False,
    }
    assert first.messages[0]["content"].endswith(json.dumps(wrapped))
    assert second.messages[-1]["content"].splitlines()[1] == "- (root): [] should be non-empty"


def test_a_property_schema_of_true_falls_back_to_json_mode_when_run(server, tmp_path):
    server.add(Reply(json={"x": 1}))
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: any
        defaults: {model: gpt-4o-mini}
        steps:
          any:
            type: extract
            prompt: Reply in JSON.
            schema: {type: object, properties: {x: true}, required: [x]}
        """,
    )
    result = run_workflow(flow, store=False)
    assert result.status == "succeeded", result.error
    assert result.steps["any"].output == {"x": 1}
    (request,) = server.requests_to("/chat/completions")
    assert request.body["response_format"] == {"type": "json_object"}


def test_a_failed_extraction_names_every_replys_reason(server, tmp_path):
    """A repair answered differently (here: the server's echo) does not hide the first reason."""
    server.add(Reply(json={"category": "outage", "urgent": True}), match="Classify")
    res = flowrun("run", ticket_flow(tmp_path), "-i", "ticket=x", "--json")
    assert res.code == 1
    error = json.loads(res.stdout)["steps"]["classify"]["error"]
    assert error.startswith(
        "the reply did not match the schema after 2 repair(s): reply 1: /category: 'outage' is "
        "not one of "
    )
    assert "; replies 2-3: the reply is not valid JSON: " in error
