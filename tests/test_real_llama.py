"""flowrun against a real llama.cpp server (llama-cpp-python 0.3.36) with a tiny random-weight
model: what differs from OpenAI is caught or handled, each as a user would see it.

Skips, saying why, where the server is not installed (its wheel comes only from
../shared/real-servers) or does not start.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowrun import load_workflow, run_workflow
from tests.helpers import flowrun
from tests.real_servers import SHARED, free_port, llama_or_skip, running

pytestmark = pytest.mark.xdist_group("llama")


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of a llama.cpp server serving the tiny model under OpenAI model names."""
    python = llama_or_skip()
    root = tmp_path_factory.mktemp("llama")
    vocab = SHARED / "ggml-vocab-llama-spm.gguf"
    for script, model, pool in (
        ("make_tiny_gguf.py", "tiny", {}),
        ("make_tiny_gguf_pool.py", "pooled", {"POOL": "1"}),  # the script pools only so
    ):
        subprocess.run(
            [str(python), str(SHARED / script), str(vocab), str(root / f"{model}.gguf")],
            check=True,
            capture_output=True,
            timeout=300,
            env={**os.environ, **pool},
        )
    port = free_port()
    chat = {
        "model": str(root / "tiny.gguf"),
        "n_ctx": 256,
        "n_batch": 256,
        "n_threads": 1,
        "verbose": False,
    }
    models = [
        {**chat, "model_alias": "gpt-4o-mini", "chat_format": "chatml"},
        {**chat, "model_alias": "gpt-4o", "chat_format": "chatml-function-calling"},
        {**chat, "model_alias": "text-embedding-3-small", "embedding": True},
        {
            **chat,
            "model": str(root / "pooled.gguf"),
            "model_alias": "text-embedding-3-large",
            "embedding": True,
        },
    ]
    config = root / "config.json"
    config.write_text(json.dumps({"host": "127.0.0.1", "port": port, "models": models}))
    url = f"http://127.0.0.1:{port}/v1"
    with running(
        [str(python), "-m", "llama_cpp.server", "--config_file", str(config)],
        f"{url}/models",
        name="llama.cpp's server",
        log=root / "server.log",
        env={},
        wait_s=120,
    ):
        yield url


def workflow(tmp_path: Path, llama: str, steps: str, setting: str = "") -> Path:
    path = tmp_path / "wf.yaml"
    text = f"""\
version: 1
name: llama
servers:
  llama:
    base_url: {llama}
    prices: {{"*": {{input: 0, output: 0}}}}
{textwrap.indent(setting, "    ")}
defaults: {{server: llama, model: gpt-4o-mini}}
steps:
{textwrap.indent(textwrap.dedent(steps), "  ")}
"""
    path.write_text(text, encoding="utf-8")
    return path


def test_the_cap_goes_as_max_tokens_and_an_ignored_cap_is_reported(llama, tmp_path):
    steps = "say: {type: chat, prompt: hello, max_completion_tokens: 6}\n"
    # llama.cpp ignores max_completion_tokens: the random model talks until its context is full
    result = run_workflow(load_workflow(workflow(tmp_path, llama, steps)), store=False)
    step = result.steps["say"]
    assert step.status == "succeeded", step.error
    assert step.usage.completion_tokens > 6
    assert step.warnings == [
        f"step 'say': the reply has {step.usage.completion_tokens:,} completion tokens, more "
        "than the cap of 6 sent as max_completion_tokens: server 'llama' ignored it; set "
        "max_tokens_param: max_tokens on server 'llama'"
    ]
    assert step.known_cost_usd == 0.0  # the user priced this server's models at $0
    # the setting the warning names: the cap holds, and nothing is reported
    wf = workflow(tmp_path, llama, steps, setting="max_tokens_param: max_tokens")
    step = run_workflow(load_workflow(wf), store=False).steps["say"]
    assert step.status == "succeeded"
    assert 0 < step.usage.completion_tokens <= 6
    assert step.warnings == [  # the random model is cut off at the cap: said as it is
        "step 'say': the reply was cut off at max_completion_tokens (finish_reason: length)"
    ]


def test_embeddings_of_the_wrong_shape_fail_the_step_naming_the_server(llama, tmp_path):
    steps = """\
    per-token: {type: embed, model: text-embedding-3-small, input: "three token words"}
    pooled: {type: embed, model: text-embedding-3-large, input: [one, two]}
    sized: {type: embed, model: text-embedding-3-large, input: one, dimensions: 8}
    """
    result = run_workflow(load_workflow(workflow(tmp_path, llama, steps)), store=False)
    assert result.steps["per-token"].status == "failed"
    assert result.steps["per-token"].error == (
        "server 'llama' returned a list of vectors (one per token) for each input, not one "
        "vector; it serves a model without pooling: use an embedding model (llama.cpp: a "
        "model with pooling, e.g. --pooling mean)"
    )
    pooled = result.steps["pooled"]
    assert pooled.status == "succeeded", pooled.error
    assert len(pooled.output) == 2 and len({len(v) for v in pooled.output}) == 1
    width = len(pooled.output[0])
    assert result.steps["sized"].error == (
        f"server 'llama' returned vectors of length {width} for dimensions 8: it ignores "
        "dimensions; remove dimensions from the step or use a model that supports it"
    )


def test_a_tool_loop_works_though_the_server_refuses_content_null(llama, tmp_path):
    (tmp_path / "words.py").write_text(
        'def count(text: str) -> int:\n    """Count words."""\n    return len(text.split())\n'
    )
    steps = """\
    ask:
      type: chat
      model: gpt-4o
      prompt: "count the words of 'a b c'"
      tools: [count]
      tool_choice: count
      max_completion_tokens: 12
      max_tool_rounds: 1
    """
    wf = workflow(tmp_path, llama, steps, setting="max_tokens_param: max_tokens")
    text = wf.read_text().replace(
        "steps:\n", "tools:\n  count: {function: 'words:count'}\nsteps:\n"
    )
    wf.write_text(text)
    result = run_workflow(load_workflow(wf), store=False)
    step = result.steps["ask"]
    assert step.status == "succeeded", step.error
    assert len(step.calls) == 2 and len(step.tool_calls) == 1  # the call, then the answer
    assert step.warnings == [
        "step 'ask': server 'llama' refused an assistant message with tool calls and content "
        'null (500); it was sent again with content "" (set tool_call_content: empty on '
        "server 'llama' to skip the refused request)"
    ]


def test_batch_api_says_the_server_has_none(llama, tmp_path):
    wf = workflow(tmp_path, llama, "ask: {type: chat, prompt: 'hi {{ inputs.q }}'}\n")
    wf.write_text(wf.read_text() + "inputs: {q: {type: string}}\n")
    data = tmp_path / "in.jsonl"
    data.write_text('{"q": "a"}\n')
    res = flowrun(
        "run", wf, "--batch", data, "--output", tmp_path / "o.jsonl", "--via", "batch-api"
    )
    assert res.code == 2
    assert "resume" not in res.output
    assert res.stderr.strip().splitlines()[-1:] == [
        f"error: server 'llama' has no Batch API: POST {llama}/files answered 404; "
        "run with --via live instead"
    ]
