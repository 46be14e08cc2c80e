"""Runs against named servers (two loopback servers): routing, keys, headers, prices, errors,
and the differences from OpenAI that a server setting or a check handles."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.testing import LoopbackServer, Reply, ToolCall
from tests.helpers import flowrun


@pytest.fixture
def other(openapi_validator):
    """A second loopback server, for steps on a named server."""
    with LoopbackServer(validator=openapi_validator) as srv:
        yield srv
    assert not srv.spec_violations, srv.spec_violations


def write(tmp_path: Path, text: str, **values: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).format(**values), encoding="utf-8")
    return path


TWO = """\
version: 1
name: two-servers
servers:
  local:
    base_url: {url}
    api_key_env: LOCAL_KEY
    headers: {{X-Team: research}}
    organization: org-local
    prices: {{"*": {{input: 0, output: 0}}}}
  unpriced:
    base_url: {url}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 50
steps:
  remote: {{type: chat, prompt: "to the default server"}}
  near: {{type: chat, prompt: "to the local server", server: local, model: llama3}}
  vectors: {{type: embed, input: [a, b], server: local, model: nomic-embed-text}}
  named-model: {{type: chat, prompt: "gpt name, local server", server: unpriced}}
outputs:
  near: "{{{{ steps.near.output }}}}"
"""


def test_each_step_goes_to_its_server_with_its_key_headers_and_prices(
    server, other, tmp_path, monkeypatch
):
    monkeypatch.setenv("LOCAL_KEY", "sk-local-key")
    usage = {"prompt_tokens": 9, "completion_tokens": 3}
    other.add(Reply(content="local answer", usage=usage), match="to the local server")
    other.add(Reply(content="x", usage=usage), match="gpt name")
    wf = write(tmp_path, TWO, url=other.url)
    result = run_workflow(load_workflow(wf), store=False)
    assert result.status == "succeeded", result
    assert result.outputs == {"near": "local answer"}
    assert [r.body["model"] for r in server.requests] == ["gpt-4o-mini"]
    to_local = other.requests_to("/chat/completions")
    assert sorted(r.body["messages"][0]["content"] for r in to_local) == [
        "gpt name, local server",
        "to the local server",
    ]
    near = next(r for r in to_local if r.body["model"] == "llama3")
    assert near.headers["authorization"] == "Bearer sk-local-key"
    assert near.headers["x-team"] == "research"
    assert near.headers["openai-organization"] == "org-local"
    keyless = next(r for r in to_local if r.body["model"] == "gpt-4o-mini")
    assert keyless.headers["authorization"] == "Bearer no-key"
    assert len(other.requests_to("/embeddings")) == 1
    # prices: the local server's models cost $0 (the user said so), not "unpriced";
    # a gpt-4o-mini served by a server with a base_url and no prices is unpriced, not OpenAI's
    assert result.steps["near"].known_cost_usd == 0.0
    assert result.steps["vectors"].known_cost_usd == 0.0
    assert result.steps["named-model"].known_cost_usd is None
    assert result.steps["remote"].known_cost_usd > 0


def test_a_server_error_names_the_server_and_the_step(server, other, tmp_path, monkeypatch):
    monkeypatch.setenv("LOCAL_KEY", "k")
    error = Reply(status=400, error="model 'llama3' not found")
    other.add(error, match="to the local server", times=None)
    wf = write(tmp_path, TWO, url=other.url)
    res = flowrun("run", wf)
    assert res.code == 1
    assert (
        "error: step 'near' failed: server 'local': API error 400: model 'llama3' not found"
        in res.stderr.splitlines()
    )
    assert "Traceback" not in res.output


def test_an_unreachable_server_is_named_with_its_url(tmp_path, monkeypatch, server):
    monkeypatch.setenv("LOCAL_KEY", "k")
    wf = write(tmp_path, TWO, url="http://127.0.0.1:9/v1")
    result = run_workflow(load_workflow(wf), store=False)
    assert result.status == "failed"
    assert "server 'local': cannot reach the API at http://127.0.0.1:9/v1" in (
        result.steps["near"].error
    )


CAP = """\
version: 1
name: cap
servers:
  llama:
    base_url: {url}
    {setting}
steps:
  talk: {{type: chat, model: tiny, prompt: "say little", server: llama, max_completion_tokens: 50}}
"""


def test_max_tokens_param_carries_the_cap_and_a_reply_past_the_cap_says_why(other, tmp_path):
    usage = {"prompt_tokens": 5, "completion_tokens": 4063}
    other.add(Reply(content="a" * 100, usage=usage, finish_reason="length"), times=None)
    result = run_workflow(
        load_workflow(write(tmp_path, CAP, url=other.url, setting="")), store=False
    )
    body = other.requests[-1].body
    assert body["max_completion_tokens"] == 50 and "max_tokens" not in body
    assert result.steps["talk"].warnings == [
        "step 'talk': the reply has 4,063 completion tokens, more than the cap of 50 sent as "
        "max_completion_tokens: server 'llama' ignored it; set max_tokens_param: max_tokens "
        "on server 'llama'"
    ]
    wf = write(tmp_path, CAP, url=other.url, setting="max_tokens_param: max_tokens")
    result = run_workflow(load_workflow(wf), store=False)
    body = other.requests[-1].body
    assert body["max_tokens"] == 50 and "max_completion_tokens" not in body
    assert result.steps["talk"].warnings == [
        "step 'talk': the reply has 4,063 completion tokens, more than the cap of 50 sent as "
        "max_tokens: server 'llama' ignored it; the server ignores max_tokens too: check its "
        "own output limit setting"
    ]


def test_a_reply_past_the_cap_on_the_default_server_says_how_to_name_it(server, tmp_path):
    server.add(Reply(content="long", usage={"prompt_tokens": 5, "completion_tokens": 99}))
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nname: d\nsteps:\n  s: {type: chat, model: gpt-4o-mini, prompt: hi, "
        "max_completion_tokens: 10}\n"
    )
    result = run_workflow(load_workflow(path), store=False)
    assert result.steps["s"].warnings == [
        "step 's': the reply has 99 completion tokens, more than the cap of 10 sent as "
        "max_completion_tokens: the server (OPENAI_BASE_URL) ignored it; name the server under "
        "servers: with max_tokens_param: max_tokens and set server: on the step (or in defaults)"
    ]


EMBED = """\
version: 1
name: embed
servers:
  ollama: {{base_url: "{url}", prices: {{"*": {{input: 0, output: 0}}}}}}
steps:
  vec: {{type: embed, model: nomic, input: {input}, server: ollama{dims}}}
"""


@pytest.mark.parametrize(
    ("vectors", "inputs", "dims", "error"),
    [
        (
            [[0.1, 0.2]] * 5,
            '"one input"',
            "",
            "server 'ollama' returned 5 embedding vectors for 1 input; a server that returns "
            "one vector per token serves a model without pooling: use an embedding model "
            "(llama.cpp: a model with pooling, e.g. --pooling mean)",
        ),
        (
            [[[0.1, 0.2], [0.3, 0.4], [0.5, 0.6]]],
            '"three token input"',
            "",
            "server 'ollama' returned a list of vectors (one per token) for each input, not one "
            "vector; it serves a model without pooling: use an embedding model (llama.cpp: a "
            "model with pooling, e.g. --pooling mean)",
        ),
        (
            [[0.1] * 8, [0.2] * 8],
            "[a, b]",
            ", dimensions: 4",
            "server 'ollama' returned vectors of length 8 for dimensions 4: it ignores "
            "dimensions; remove dimensions from the step or use a model that supports it",
        ),
        (
            [[0.1] * 8, [0.2] * 3],
            "[a, b]",
            "",
            "server 'ollama' returned vectors of different lengths (3, 8)",
        ),
    ],
)
def test_an_embedding_reply_of_the_wrong_shape_is_the_steps_error(
    other, tmp_path, vectors, inputs, dims, error
):
    other.add(Reply(embeddings=vectors), endpoint="/embeddings")
    wf = write(tmp_path, EMBED, url=other.url, input=inputs, dims=dims)
    result = run_workflow(load_workflow(wf), store=False)
    step = result.steps["vec"]
    assert step.status == "failed"
    assert step.error == error
    assert len(step.calls) == 1 and step.known_cost_usd == 0.0  # the paid call is recorded


TOOLS = """\
version: 1
name: tools
servers:
  llama: {{base_url: "{url}"{setting}}}
tools:
  count: {{function: "tests.tool_fixtures:word_count"}}
steps:
  ask: {{type: chat, model: tiny, prompt: "count words", tools: [count], server: llama}}
"""


def _refuse_null(req):
    for message in req.messages:
        if message.get("tool_calls") and message.get("content") is None:
            return Reply(status=500, error="Expected 'content' to be a string")
    if any(m.get("role") == "tool" for m in req.messages):
        return Reply(content="3 words")
    return Reply(tool_calls=[ToolCall("count", {"text": "one two three"})])


def test_a_server_refusing_null_tool_call_content_gets_an_empty_string(other, tmp_path):
    other.default = _refuse_null
    result = run_workflow(
        load_workflow(write(tmp_path, TOOLS, url=other.url, setting="")), store=False
    )
    assert result.status == "succeeded", result.steps["ask"].error
    assert result.steps["ask"].output == "3 words"
    contents = [
        [m.get("content") for m in r.messages if m.get("tool_calls")] for r in other.requests
    ]
    assert contents == [[], [None], [""]]  # refused once, then sent what it accepts
    assert result.steps["ask"].warnings == [
        "step 'ask': server 'llama' refused an assistant message with tool calls and content "
        'null (500); it was sent again with content "" (set tool_call_content: empty on '
        "server 'llama' to skip the refused request)"
    ]
    other.requests.clear()
    wf = write(tmp_path, TOOLS, url=other.url, setting=", tool_call_content: empty")
    result = run_workflow(load_workflow(wf), store=False)
    assert result.status == "succeeded"
    contents = [
        [m.get("content") for m in r.messages if m.get("tool_calls")] for r in other.requests
    ]
    assert contents == [[], [""]]
    assert result.steps["ask"].warnings == []


AZURE = """\
version: 1
name: azure
servers:
  azure:
    api_key_env: AZURE_OPENAI_API_KEY
    azure:
      endpoint: {endpoint}
      api_version: "2024-10-21"
      deployments: {{gpt-4o-mini: prod-mini}}
defaults: {{server: azure, model: gpt-4o-mini, max_completion_tokens: 20}}
steps:
  ask: {{type: chat, prompt: hi}}
"""


def test_azure_goes_through_the_sdks_azure_client_to_the_deployment(other, tmp_path, monkeypatch):
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "azure-key")
    other.add(Reply(content="hello", usage={"prompt_tokens": 8, "completion_tokens": 1}))
    endpoint = other.url.removesuffix("/v1")
    result = run_workflow(load_workflow(write(tmp_path, AZURE, endpoint=endpoint)), store=False)
    assert result.status == "succeeded", result.steps["ask"].error
    request = other.requests[-1]
    assert request.path == "/chat/completions"  # /openai/deployments/prod-mini/... on Azure
    assert request.body["model"] == "prod-mini"
    assert request.query == "api-version=2024-10-21"
    assert request.headers["api-key"] == "azure-key"
    assert result.steps["ask"].model == "gpt-4o-mini"
    assert result.steps["ask"].known_cost_usd > 0  # priced as gpt-4o-mini (OpenAI's table)


BATCH = """\
version: 1
name: batch
{servers}
inputs: {{q: {{type: string}}}}
steps:
  ask: {{type: chat, model: gpt-4o-mini, prompt: "hi {{{{ inputs.q }}}}"{server}}}
"""


@pytest.mark.parametrize("named", [True, False])
def test_batch_api_on_a_server_without_it_says_so_in_one_line(server, tmp_path, named):
    server.batch_api.available = False
    if named:
        servers = f'servers:\n  local: {{base_url: "{server.url}", prices: openai}}'
        wf = write(tmp_path, BATCH, servers=servers, server=", server: local")
        who = "server 'local'"
    else:
        wf = write(tmp_path, BATCH, servers="", server="")
        who = "the server"
    data = tmp_path / "in.jsonl"
    data.write_text('{"q": "a"}\n{"q": "b"}\n')
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--via", "batch-api")
    assert res.code == 2
    assert res.stderr.strip().splitlines()[-1:] == [
        f"error: {who} has no Batch API: POST {server.url}/files answered 404; "
        "run with --via live instead"
    ]
    assert "resume" not in res.output and "Traceback" not in res.output
    assert not out.exists()  # so --via live can write it
    res = flowrun("run", wf, "--batch", data, "--output", out, "--via", "live")
    assert res.code == 0, res.output


def test_batch_api_lines_are_adapted_to_the_named_server_like_live_calls(server, tmp_path):
    """--via batch-api on a server with max_tokens_param: the batch's lines carry max_tokens,
    and a reply past it is reported as one past the cap sent as max_tokens."""
    usage = {"prompt_tokens": 5, "completion_tokens": 99}
    server.add(Reply(content="long", usage=usage, finish_reason="length"), times=None)
    servers = (
        f'servers:\n  local: {{base_url: "{server.url}", prices: openai, '
        "max_tokens_param: max_tokens}"
    )
    wf = write(tmp_path, BATCH, servers=servers, server=", server: local, max_completion_tokens: 9")
    data = tmp_path / "in.jsonl"
    data.write_text('{"q": "a"}\n')
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--via", "batch-api", "--json")
    assert res.code == 0, res.output
    (line,) = server.batch_api.requests
    assert line.body["max_tokens"] == 9 and "max_completion_tokens" not in line.body
    warning = (
        "step 'ask': the reply has 99 completion tokens, more than the cap of 9 sent as "
        "max_tokens: server 'local' ignored it; the server ignores max_tokens too: check its "
        "own output limit setting"
    )
    assert json.loads(out.read_text())["warnings"] == [warning]
    assert json.loads(res.stdout)["warnings"] == [{"message": warning, "records": 1}]
    data.write_text('{"q": "a"}\n{"q": "b"}\n')
    res = flowrun("run", wf, "--batch", data, "--output", tmp_path / "live.jsonl")
    assert res.code == 0, res.output
    assert server.requests[-1].body["max_tokens"] == 9
    assert f"warning (2 records): {warning}" in res.stderr.splitlines()
