"""promptflow connections in python nodes: the converted tool step passes the connection's
name and flowrun's stand-in ``promptflow.connections`` builds the object from the environment
variables the report names (without promptflow installed)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from flowrun.testing import Reply
from tests.helpers import flowrun

FLOWS = Path(__file__).parent / "promptflow_flows"


@pytest.fixture
def flow(tmp_path: Path) -> Path:
    loaded = sys.modules.get("promptflow")
    if loaded is not None and not getattr(loaded, "__flowrun_stub__", False):
        pytest.skip("promptflow itself is installed: its connections are not ours")
    target = tmp_path / "connections"
    shutil.copytree(FLOWS / "connections", target)
    return target


def test_the_report_names_the_variables_of_each_connection(flow):
    res = flowrun("convert", "promptflow", flow)
    assert res.code == 0, res.output
    lines = res.stdout.splitlines()
    setup = lines[lines.index("before running it (outside the workflow file):") + 1 :]
    assert setup[:2] == [
        "  - ask: connection 'my_openai' (connection: Union[AzureOpenAIConnection, "
        "OpenAIConnection]): flowrun's stand-in builds it from environment variables, as an "
        "AzureOpenAIConnection: MY_OPENAI_API_KEY and MY_OPENAI_API_BASE (or "
        "AZURE_OPENAI_API_KEY, AZURE_OPENAI_ENDPOINT and OPENAI_API_VERSION); as an "
        "OpenAIConnection: MY_OPENAI_API_KEY and MY_OPENAI_BASE_URL (or OPENAI_API_KEY and "
        "OPENAI_BASE_URL); MY_OPENAI_API_BASE makes it an Azure connection",
        "  - sign: connection 'my_service' (conn: CustomConnection): flowrun's stand-in builds "
        "it from environment variables, as a CustomConnection: MY_SERVICE_AUTHOR, "
        "MY_SERVICE_TEAM",
    ]
    assert "promptflow.connections" not in res.stdout  # the imports are provided
    assert lines[-1] == "result: runnable (flowrun validate passes)"


def test_connections_are_filled_from_the_environment(flow, server, monkeypatch):
    assert flowrun("convert", "promptflow", flow).code == 0
    monkeypatch.setenv("MY_OPENAI_API_KEY", "sk-from-my-openai")
    monkeypatch.setenv("MY_OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # the named one wins
    monkeypatch.setenv("MY_SERVICE_AUTHOR", "Ada")
    monkeypatch.setenv("MY_SERVICE_TEAM", "evals")
    server.add(Reply(content="4"))
    run = flowrun("run", flow / "flowrun.yaml", "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["outputs"] == {
        "answer": "4",
        "signature": "4 -- Ada (evals, 2 settings)",
    }
    (request,) = server.requests_to("/chat/completions")
    assert request.body == {
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "What is 2 + 2?"}],
        "max_tokens": 20,
    }
    assert request.headers.get("authorization") == "Bearer sk-from-my-openai"
    assert "sk-from-my-openai" not in run.stdout


def test_a_missing_custom_key_fails_the_step_naming_the_variable(flow, server, monkeypatch):
    assert flowrun("convert", "promptflow", flow).code == 0
    monkeypatch.setenv("MY_OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("MY_SERVICE_TEAM", "evals")
    server.add(Reply(content="4"))
    run = flowrun("run", flow / "flowrun.yaml")
    assert run.code == 1
    assert "connection 'my_service' has no 'author': set MY_SERVICE_AUTHOR" in run.stderr


def test_the_embedding_package_tool_becomes_an_embed_step(tmp_path, server):
    import math

    from flowrun.testing import embed_text

    flow = tmp_path / "embedding"
    shutil.copytree(FLOWS / "embedding", flow)
    res = flowrun("convert", "promptflow", flow)
    assert res.code == 0, res.output
    assert "  embed_answer  python  -> embed step" in res.stdout.splitlines()
    run = flowrun("run", flow / "flowrun.yaml", "--json")
    assert run.code == 0, run.stderr
    # promptflow's OpenAI embedding call has the model and the text (flowrun sends the text
    # as a list of one: the same embedding; a difference the docs name)
    assert sorted(
        (r.body["model"], r.body["input"]) for r in server.requests_to("/embeddings")
    ) == [
        ("text-embedding-3-small", ["The sky is blue."]),
        ("text-embedding-3-small", ["The sky looks blue."]),
    ]
    a, b = embed_text("The sky is blue."), embed_text("The sky looks blue.")
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    expected = round(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))), 6)
    assert json.loads(run.stdout)["outputs"] == {"similarity": expected}
