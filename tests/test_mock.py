"""``flowrun run --mock``: offline, free, and extract steps get schema-valid JSON."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowrun.format.validation import schema_errors
from flowrun.provider.mock import example_instance
from tests.helpers import WORKFLOWS, flowrun

SCHEMAS = {
    "flat": {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name"],
    },
    "bounds": {
        "type": "object",
        "properties": {
            "code": {"type": "string", "minLength": 10, "maxLength": 12},
            "short": {"type": "string", "maxLength": 3},
            "negative": {"type": "integer", "maximum": -5},
            "positive": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
            "even": {"type": "integer", "minimum": 3, "multipleOf": 2},
        },
        "required": ["code", "short", "negative", "positive", "even"],
    },
    "formats_and_patterns": {
        "type": "object",
        "properties": {
            "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            "sku": {"type": "string", "pattern": "^SKU-\\d{4}(-[a-z]+)?$"},
            "email": {"type": "string", "format": "email"},
            "day": {"type": "string", "format": "date"},
        },
        "required": ["currency", "sku", "email", "day"],
    },
    "arrays": {
        "type": "object",
        "properties": {
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 3, "uniqueItems": True},
            "scores": {"type": "array", "items": {"type": "integer", "minimum": 1}, "maxItems": 2},
            "pair": {"type": "array", "prefixItems": [{"type": "string"}, {"type": "number"}]},
            "colours": {"type": "array", "items": {"enum": ["red", "green"]}, "minItems": 2, "uniqueItems": True},
        },
        "required": ["tags", "scores", "pair", "colours"],
    },
    "composition": {
        "type": "object",
        "$defs": {"money": {"type": "object", "properties": {"amount": {"type": "number", "minimum": 1}}, "required": ["amount"]}},
        "properties": {
            "price": {"$ref": "#/$defs/money"},
            "either": {"oneOf": [{"type": "integer", "maximum": 0}, {"type": "integer", "minimum": 5}]},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 2}]},
            "both": {"allOf": [{"properties": {"a": {"const": 1}}, "required": ["a"]}, {"properties": {"b": {"type": "boolean"}}, "required": ["b"]}]},
            "kind": {"type": ["string", "null"], "enum": ["x", "y", None]},
        },
        "required": ["price", "either", "maybe", "both", "kind"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
                    "required": ["name", "qty"],
                    "additionalProperties": False,
                },
            },
            "meta": {"type": "object", "minProperties": 2},
        },
        "required": ["items", "meta"],
    },
}  # fmt: skip


@pytest.mark.parametrize("name", SCHEMAS)
def test_example_instance_validates_against_the_schema(name):
    schema = SCHEMAS[name]
    value = example_instance(schema)
    assert schema_errors(value, schema) == [], value


def test_example_instance_fills_optional_properties_so_templates_can_read_them():
    assert example_instance(SCHEMAS["flat"]) == {"name": "example", "age": 0}


EXTRACTS = """\
    version: 1
    name: extracts
    inputs: {text: {type: string, default: "Ada, 36, ada@example.com"}}
    defaults: {model: gpt-4o-mini}
    steps:
      strict:
        type: extract
        prompt: "Extract: {{ inputs.text }}"
        schema: {schema_strict}
      fallback:
        type: extract
        prompt: "Extract again: {{ inputs.text }}"
        schema: {schema_fallback}
      note:
        type: chat
        prompt: "Write about {{ steps.strict.output.code }} and {{ steps.fallback.output.either }}"
      json_mode:
        type: chat
        prompt: "Reply in JSON about {{ inputs.text }}"
        response_format: json
    outputs:
      strict: "{{ steps.strict.output }}"
      fallback: "{{ steps.fallback.output }}"
      note: "{{ steps.note.output }}"
      json_mode: "{{ steps.json_mode.output }}"
"""


def test_mock_run_gives_schema_valid_json_for_extract_steps(tmp_path: Path):
    # strict mode drops minLength from the request: the mock still honours the workflow's schema
    strict = SCHEMAS["bounds"]
    fallback = SCHEMAS["composition"]  # oneOf: not strict-compatible, so JSON mode + schema text
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(EXTRACTS)
        .replace("{schema_strict}", json.dumps(strict))
        .replace("{schema_fallback}", json.dumps(fallback)),
        encoding="utf-8",
    )
    res = flowrun("run", path, "--mock", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["status"] == "succeeded"
    outputs = doc["outputs"]
    assert schema_errors(outputs["strict"], strict) == []
    assert schema_errors(outputs["fallback"], fallback) == []
    assert (
        outputs["note"]
        == f"echo: Write about {outputs['strict']['code']} and {outputs['fallback']['either']}"
    )
    assert outputs["json_mode"] == {"echo": "Reply in JSON about Ada, 36, ada@example.com"}
    assert doc["cost"]["calls"] == 4  # no repairs were needed
    assert doc["steps"]["strict"]["calls"] == 1


def test_mock_runs_the_vision_example_offline(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    res = flowrun("run", WORKFLOWS / "vision-receipt.yaml", "--mock", "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["outputs"] == {
        "merchant": "example",
        "total": 0,
        "currency": "example",
    }
    import os

    assert "OPENAI_BASE_URL" not in os.environ  # restored after the run


def test_mock_runs_in_process_without_touching_the_environment(monkeypatch):
    """--mock starts no server and sets no variable: the run's client is the fake model."""
    import os

    from flowrun.testing.loopback import LoopbackServer

    def no_server(self):
        raise AssertionError("--mock started a server")

    monkeypatch.setattr(LoopbackServer, "start", no_server)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    seen: list[dict[str, str]] = []
    real_environ = dict(os.environ)
    from flowrun.provider import mock as mock_module

    original = mock_module.MockClient.chat

    async def chat(self, request, **options):
        seen.append({k: os.environ.get(k) for k in ("OPENAI_API_KEY", "OPENAI_BASE_URL")})
        return await original(self, request, **options)

    monkeypatch.setattr(mock_module.MockClient, "chat", chat)
    res = flowrun("run", WORKFLOWS / "vision-receipt.yaml", "--mock", "--json")
    assert res.code == 0, res.stderr
    assert seen == [{"OPENAI_API_KEY": None, "OPENAI_BASE_URL": None}]
    assert dict(os.environ) == real_environ


def test_every_model_client_implements_the_protocol():
    from flowrun.batch.batch_api.wave_client import WaveClient
    from flowrun.provider.client import OpenAIClient
    from flowrun.provider.interface import ModelClient
    from flowrun.provider.mock import MockClient
    from flowrun.provider.ratelimit import RateLimitedClient, RateLimiter

    clients = [
        OpenAIClient(api_key="sk-test"),
        MockClient(),
        RateLimitedClient(MockClient(), RateLimiter(60, None)),
        WaveClient(coordinator=None, record_index=lambda: 0),  # type: ignore[arg-type]
    ]
    assert [isinstance(c, ModelClient) for c in clients] == [True] * 4
    assert not isinstance(object(), ModelClient)


def test_a_mock_run_is_marked_mock_and_shows_no_dollars(tmp_path):
    """The fake model's tokens are not a bill: no $ figure, in the text report or in --json."""
    res = flowrun("run", WORKFLOWS / "summarize.yaml", "--mock", "-i", "text=Hello there.")
    assert res.code == 0, res.stderr
    lines = res.stderr.splitlines()
    assert lines[0].split() == [
        "step",
        "status",
        "model",
        "calls",
        "prompt",
        "completion",
        "cost",
        "time",
    ]
    assert [line.split()[6] for line in lines[1:3]] == ["mock", "mock"]
    assert "no dollars (mock run: --mock's fake model answered)" in lines[3]
    assert "$" not in res.stderr

    doc = json.loads(
        flowrun("run", WORKFLOWS / "summarize.yaml", "--mock", "-i", "text=Hi.", "--json").stdout
    )
    assert doc["cost"]["mock"] is True and doc["cost"]["total_usd"] is None
    assert {s["cost_usd"] for s in doc["steps"].values()} == {None}
    assert all(s["mock"] for s in doc["steps"].values())


def test_a_mock_batch_shows_no_dollars(tmp_path):
    records = tmp_path / "in.jsonl"
    records.write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    res = flowrun(
        "run",
        WORKFLOWS / "summarize.yaml",
        "--mock",
        "--batch",
        records,
        "--output",
        tmp_path / "o.jsonl",
    )
    assert res.code == 0, res.stderr
    assert "cost no dollars (mock run)" in res.stderr and "$" not in res.stderr


def test_mock_batch_api_runs_share_a_store_and_show_no_dollars(tmp_path):
    """Two ``--mock --via batch-api`` runs in one run store: the second is not refused for a
    file id the first one stored, and neither reports dollars."""
    records = tmp_path / "in.jsonl"
    records.write_text('{"text": "a"}\n{"text": "b"}\n', encoding="utf-8")
    for n in (1, 2):
        res = flowrun(
            "run",
            WORKFLOWS / "summarize.yaml",
            "--mock",
            "--via",
            "batch-api",
            "--batch",
            records,
            "--output",
            tmp_path / f"o{n}.jsonl",
        )
        assert res.code == 0, res.stderr
        assert "cost no dollars (mock run)" in res.stderr and "$" not in res.stderr
        assert (tmp_path / f"o{n}.jsonl").read_text(encoding="utf-8").count("succeeded") == 2
