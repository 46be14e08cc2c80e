"""flowrun against a real LiteLLM proxy (1.106.12): its mock_response models, and models,
embeddings, Files and Batches forwarded to a loopback server behind it.

Skips, saying why, where LiteLLM is not installed or does not start.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.testing import LoopbackServer, Reply, ToolCall
from tests.helpers import flowrun
from tests.real_servers import free_port, litellm_or_skip, running

pytestmark = pytest.mark.xdist_group("litellm")

MASTER_KEY = "sk-flowrun-test-master"


@pytest.fixture(scope="module")
def behind() -> Iterator[LoopbackServer]:
    """The loopback server LiteLLM forwards to (LiteLLM adds fields of its own to requests, so
    they are not checked against OpenAI's OpenAPI spec here)."""
    with LoopbackServer() as srv:
        yield srv


@pytest.fixture(scope="module")
def proxy(behind: LoopbackServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a LiteLLM proxy in front of ``behind``."""
    litellm = litellm_or_skip()
    root = tmp_path_factory.mktemp("litellm")
    forward = {"api_base": behind.url, "api_key": "sk-behind"}
    config = {
        "model_list": [
            {
                "model_name": "mock-gpt",
                "litellm_params": {
                    "model": "openai/gpt-4o-mini",
                    "mock_response": "Hello from the mock",
                    "api_key": "unused",
                },
            },
            {
                "model_name": "gpt-4o-mini",
                "litellm_params": {"model": "openai/gpt-4o-mini", **forward},
            },
            {
                "model_name": "text-embedding-3-small",
                "litellm_params": {"model": "openai/text-embedding-3-small", **forward},
            },
        ],
        "files_settings": [{"custom_llm_provider": "openai", **forward}],
    }
    (root / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "LITELLM_MASTER_KEY": MASTER_KEY,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch from the network at start-up
        # the Batches API's fallback credentials (files_settings covers only /v1/files)
        "OPENAI_API_BASE": behind.url,
        "OPENAI_API_KEY": "sk-behind",
    }
    with running(
        [
            str(litellm),
            "--config",
            str(root / "config.yaml"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        f"{url}/health/liveliness",
        name="LiteLLM proxy",
        log=root / "proxy.log",
        env=env,
        wait_s=300,
    ):
        yield f"{url}/v1"


def workflow(tmp_path: Path, proxy: str, steps: str, extra: str = "") -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(
        f"""\
version: 1
name: litellm
servers:
  proxy:
    base_url: {proxy}
    api_key_env: LITELLM_TEST_KEY
    prices: {{"*": {{input: 0, output: 0}}}}
defaults: {{server: proxy, max_completion_tokens: 40}}
{extra}
steps:
{textwrap.indent(textwrap.dedent(steps), "  ")}
""",
        encoding="utf-8",
    )
    return path


def test_a_mock_response_model_and_a_wrong_key(proxy, tmp_path, monkeypatch):
    wf = workflow(tmp_path, proxy, "hello: {type: chat, model: mock-gpt, prompt: hi}\n")
    monkeypatch.setenv("LITELLM_TEST_KEY", MASTER_KEY)
    step = run_workflow(load_workflow(wf), store=False).steps["hello"]
    assert step.status == "succeeded", step.error
    assert step.output == "Hello from the mock"
    assert step.usage.prompt_tokens > 0 and step.known_cost_usd == 0.0
    monkeypatch.setenv("LITELLM_TEST_KEY", "sk-wrong-key")
    res = flowrun("run", wf)
    assert res.code == 1
    error = next(line for line in res.stderr.splitlines() if line.startswith("error:"))
    # without a database LiteLLM cannot look other keys up: 400 "No connected db."
    assert error.startswith("error: step 'hello' failed: server 'proxy': API error 4"), error
    assert "sk-wrong-key" not in res.output


def test_chat_with_tools_and_embeddings_forwarded(proxy, behind, tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_TEST_KEY", MASTER_KEY)
    (tmp_path / "words.py").write_text(
        'def count(text: str) -> int:\n    """Count words."""\n    return len(text.split())\n'
    )
    behind.add(Reply(tool_calls=[ToolCall("count", {"text": "a b c"})]), match="count words")
    behind.add(
        Reply(content="three words"),
        match=lambda req: any(m.get("role") == "tool" for m in req.messages),
    )
    steps = """\
    ask: {type: chat, model: gpt-4o-mini, prompt: "count words of 'a b c'", tools: [count]}
    vec: {type: embed, model: text-embedding-3-small, input: [one, two], dimensions: 8}
    """
    wf = workflow(tmp_path, proxy, steps, extra="tools:\n  count: {function: 'words:count'}")
    result = run_workflow(load_workflow(wf), store=False)
    assert result.steps["ask"].status == "succeeded", result.steps["ask"].error
    assert result.steps["ask"].output == "three words"
    assert [c.get("result") for c in result.steps["ask"].tool_calls] == [3]
    answered = behind.requests_to("/chat/completions")[-1]
    assert [m["role"] for m in answered.messages] == ["user", "assistant", "tool"]
    assert result.steps["vec"].status == "succeeded", result.steps["vec"].error
    assert [len(v) for v in result.steps["vec"].output] == [8, 8]


def test_batch_api_through_the_proxy(proxy, behind, tmp_path, monkeypatch):
    monkeypatch.setenv("LITELLM_TEST_KEY", MASTER_KEY)
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.2,1")
    behind.default = lambda req: Reply(content=f"re: {req.last_user_text}")
    wf = workflow(
        tmp_path, proxy, "ask: {type: chat, model: gpt-4o-mini, prompt: 'q {{ inputs.q }}'}\n"
    )
    wf.write_text(wf.read_text() + "inputs: {q: {type: string}}\n")
    data = tmp_path / "in.jsonl"
    data.write_text("".join(json.dumps({"q": f"n{i}"}) + "\n" for i in range(3)))
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", data, "--output", out, "--via", "batch-api")
    assert res.code == 0, res.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["status"] for x in lines] == ["succeeded"] * 3
    assert len(behind.batch_api.batches) >= 1  # the batch was made behind the proxy
