"""The ``embed`` step: one string or a list, batches of 2048, dimensions, priced usage."""

from __future__ import annotations

import json

import pytest

from flowrun import run_workflow
from flowrun.testing import Reply, embed_text
from tests.flow_files import make_flow
from tests.helpers import flowrun

EMBED = """\
version: 1
name: embed
inputs:
  text: {{type: string, default: "the quick brown fox"}}
  texts: {{type: array, default: []}}
steps:
  vector:
    type: embed
    input: "{input}"
{extra}
outputs:
  vector: "{{{{ steps.vector.output }}}}"
"""


def flow(tmp_path, input: str = "{{ inputs.text }}", extra: str = ""):
    return make_flow(tmp_path, EMBED.format(input=input, extra=extra))


def test_one_string_gives_one_vector_with_the_requested_dimensions(server, tmp_path):
    res = flowrun(
        "run",
        flow(tmp_path, extra="    dimensions: 256\n    model: text-embedding-3-large"),
        "--json",
    )
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    (request,) = server.requests_to("/embeddings")
    assert request.body == {
        "model": "text-embedding-3-large",
        "input": ["the quick brown fox"],
        "dimensions": 256,
        "encoding_format": "float",
    }
    vector = doc["outputs"]["vector"]
    assert vector == pytest.approx(embed_text("the quick brown fox", 256))
    step = doc["steps"]["vector"]
    # usage is priced like any call: 4 tokens at $0.13 per million
    assert step["usage"]["prompt_tokens"] == 4
    assert step["cost_usd"] == pytest.approx(4 * 0.13 / 1e6)
    assert doc["cost"]["by_model"]["text-embedding-3-large"]["calls"] == 1
    assert doc["cost"]["unpriced_models"] == []


def test_a_list_gives_vectors_in_input_order(server, tmp_path):
    texts = ["refund my order", "the app crashes", "thank you!"]
    result = run_workflow(
        flow(tmp_path, "{{ inputs.texts }}", "    dimensions: 64"), {"texts": texts}, store=False
    )
    assert result.status == "succeeded", result.error
    assert result.outputs["vector"] == [pytest.approx(embed_text(t, 64)) for t in texts]
    (request,) = server.requests_to("/embeddings")
    assert request.body["input"] == texts
    assert request.body["model"] == "text-embedding-3-small"  # the default embedding model


def test_more_than_2048_inputs_are_split_into_requests_of_at_most_2048(server, tmp_path):
    texts = [f"text number {i}" for i in range(4100)]
    result = run_workflow(
        flow(tmp_path, "{{ inputs.texts }}", "    dimensions: 2"), {"texts": texts}, store=False
    )
    assert result.status == "succeeded", result.error
    requests = sorted(
        server.requests_to("/embeddings"), key=lambda r: int(r.body["input"][0].split()[-1])
    )
    assert [len(r.body["input"]) for r in requests] == [2048, 2048, 4]
    assert [t for r in requests for t in r.body["input"]] == texts
    assert all(r.body["dimensions"] == 2 for r in requests)
    vectors = result.outputs["vector"]
    assert len(vectors) == 4100
    for i in (0, 2047, 2048, 4095, 4099):
        assert vectors[i] == pytest.approx(embed_text(texts[i], 2))
    step = result.steps["vector"]
    assert len(step.calls) == 3
    assert step.usage.prompt_tokens == 3 * 4100
    assert step.cost_usd == pytest.approx(3 * 4100 * 0.02 / 1e6)


def test_input_that_is_not_text_fails_clearly(server, tmp_path):
    result = run_workflow(flow(tmp_path, "{{ inputs.texts }}"), {"texts": ["a", 3]}, store=False)
    assert (
        result.error
        == "step 'vector' failed: input must be a string or a list of strings, got list"
    )
    result = run_workflow(flow(tmp_path, "{{ inputs.texts }}"), {"texts": ["a", ""]}, store=False)
    assert result.error == (
        "step 'vector' failed: input contains an empty string, which the embeddings API rejects"
    )
    assert server.requests == []


def test_an_empty_list_makes_no_request(server, tmp_path):
    result = run_workflow(flow(tmp_path, "{{ inputs.texts }}"), {"texts": []}, store=False)
    assert result.outputs == {"vector": []}
    assert server.requests == []


def test_an_api_error_fails_the_step(server, tmp_path):
    server.add(Reply(status=400, error="dimensions too large"), endpoint="/embeddings")
    result = run_workflow(flow(tmp_path), store=False)
    assert result.error == "step 'vector' failed: API error 400: dimensions too large"
