"""promptflow flows whose own Python calls promptflow-tools (``promptflow.tools.openai`` /
``aoai`` ``chat``, ``promptflow.tools.common``) or takes promptflow's ``Image``: the converted
workflow runs them through flowrun's stand-in, without promptflow installed, and sends what
promptflow-tools 1.6.1 sends (the expected requests below are written from its behaviour:
``temperature``, ``top_p`` and ``stream`` always, the aoai tool's ``n`` and its header, a list
rendered one item a line by the aoai tool, ``tool_choice: auto`` when tools are given)."""

from __future__ import annotations

import base64
import json
import shutil
import sys
from pathlib import Path

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.testing import LoopbackServer, Reply, ToolCall
from tests.helpers import flowrun
from tests.imagefiles import png_bytes

FLOWS = Path(__file__).parent / "promptflow_flows"
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "run_step",
            "description": "Run one step of the plan.",
            "parameters": {"type": "object", "properties": {"step": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def copy(tmp_path: Path):
    loaded = sys.modules.get("promptflow")
    if loaded is not None and not getattr(loaded, "__flowrun_stub__", False):
        pytest.skip("promptflow itself is installed: its tools are not ours")

    def make(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(FLOWS / name, target)
        return target

    return make


@pytest.fixture
def tools_flow(copy, server, monkeypatch) -> Path:
    return converted(copy("pf_tools"), server, monkeypatch)


def converted(flow: Path, server, monkeypatch) -> Path:
    """The pf_tools flow converted, its connections' variables set, the server's replies."""
    res = flowrun("convert", "promptflow", flow)
    assert res.code == 0, res.output
    assert "not converted" not in res.stdout  # promptflow.tools' imports are provided
    monkeypatch.setenv("MY_OPENAI_API_KEY", "sk-openai-secret")
    monkeypatch.setenv("MY_OPENAI_BASE_URL", server.url)
    monkeypatch.setenv("MY_AZURE_API_KEY", "azure-secret")
    monkeypatch.setenv("MY_AZURE_API_BASE", server.url)
    monkeypatch.setenv("MY_AZURE_API_VERSION", "2024-02-01")
    server.add(
        Reply(content="Four", usage={"prompt_tokens": 1000, "completion_tokens": 100}),
        match="What is 2 + 2?",
    )
    server.add(Reply(tool_calls=[ToolCall("run_step", {"step": "add"}, id="call_1")]))
    return flow


EXPECTED_OUTPUTS = {
    "answer": "Four",
    "plan": {"role": "assistant", "name": "run_step", "arguments": '{"step": "add"}'},
    # parse_chat: 'system:' without '#', a role in capitals, name:/content: lines; an
    # undefined value renders as nothing (Jinja's default, as promptflow-tools renders)
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "name": "ada", "content": "Four"},
    ],
}


def check_requests(server) -> None:
    ask, plan = sorted(server.requests_to("/chat/completions"), key=lambda r: r.body["model"])
    assert ask.body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "You answer in one word."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
            {"role": "user", "content": "What is 2 + 2?"},
        ],
        "temperature": 0,
        "top_p": 1,
        "stream": False,
        "max_tokens": 20,
    }
    assert ask.headers["authorization"] == "Bearer sk-openai-secret"
    assert plan.body == {
        "model": "planner",
        "messages": [
            {"role": "user", "content": "The steps, one a line:\nadd\ncheck\nThe answer was Four."}
        ],
        "temperature": 1,
        "top_p": 1,
        "n": 1,
        "stream": False,
        "tools": TOOLS,
        "tool_choice": "auto",
    }
    # Azure OpenAI: the deployment's URL, the api-key header and promptflow's own header
    assert plan.query == "api-version=2024-02-01"
    assert plan.headers["api-key"] == "azure-secret"
    assert plan.headers["ms-azure-ai-promptflow-called-from"] == "aoai-tool"


def test_promptflow_tools_calls_send_what_promptflow_sends(tools_flow, server):
    run = flowrun("run", tools_flow / "flowrun.yaml", "--json")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["outputs"] == EXPECTED_OUTPUTS
    check_requests(server)
    # the calls count as the tool steps' own: tokens, and dollars where the model is priced
    ask, plan = result["steps"]["ask"], result["steps"]["plan"]
    assert (ask["calls"], ask["model"]) == (1, "gpt-4o-mini")
    assert ask["usage"]["prompt_tokens"] == 1000
    assert ask["usage"]["completion_tokens"] == 100
    assert ask["cost_usd"] > 0
    assert (plan["calls"], plan["model"], plan["cost_usd"]) == (1, "planner", None)
    assert result["steps"]["split"]["calls"] == 0
    for secret in ("sk-openai-secret", "azure-secret"):
        assert secret not in run.stdout + run.stderr


def test_the_python_api_runs_them_the_same(tools_flow, server):
    result = run_workflow(load_workflow(tools_flow / "flowrun.yaml"), {})
    assert result.status == "succeeded"
    assert result.outputs == EXPECTED_OUTPUTS
    check_requests(server)
    (call,) = result.steps["ask"].calls
    assert (call.model, call.usage.prompt_tokens, call.usage.completion_tokens) == (
        "gpt-4o-mini",
        1000,
        100,
    )


def test_a_prompt_without_a_role_line_fails_the_step_as_promptflow_refuses_it(
    copy, server, monkeypatch
):
    flow = copy("pf_tools")
    split = flow / "split.py"
    split.write_text(split.read_text().replace('"system:\\nBe brief.', '"Be brief.'))
    run = flowrun("run", converted(flow, server, monkeypatch) / "flowrun.yaml")
    assert run.code == 1
    assert (
        "split:split raised PromptflowToolError: The Chat API requires a specific format for "
        "prompt definition, and the prompt should include separate lines as role delimiters: "
        "'system:\\n','user:\\n','assistant:\\n','function:\\n','tool:\\n'. Current parsed role "
        "'Be brief.' does not meet the requirement."
    ) in run.stderr


def test_render_jinja_template_takes_the_prompt_keyword_of_earlier_promptflow_tools(
    copy, server, monkeypatch
):
    # gen-docstring calls render_jinja_template(prompt=...), the name promptflow-tools gave
    # the template before 1.6 (which refuses it): the stand-in takes either
    flow = copy("pf_tools")
    split = flow / "split.py"
    split.write_text(
        split.read_text().replace("render_jinja_template(\n", "render_jinja_template(\nprompt=")
    )
    assert "render_jinja_template(\nprompt=" in split.read_text()
    run = flowrun("run", converted(flow, server, monkeypatch) / "flowrun.yaml", "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["outputs"] == EXPECTED_OUTPUTS


def test_a_server_error_fails_the_step_without_the_key(tools_flow, server):
    server.reset()
    server.add(Reply(status=401, error="Incorrect API key provided: sk-openai-secret"))
    run = flowrun("run", tools_flow / "flowrun.yaml")
    assert run.code == 1
    assert "ask:ask raised ModelCallError" in run.stderr
    assert "sk-openai-secret" not in run.stdout + run.stderr


def png() -> bytes:
    return png_bytes(3, 2)


def test_an_image_parameter_gets_promptflow_image_and_its_result_is_sent(copy, server):
    flow = copy("pf_image")
    (flow / "logo.png").write_bytes(png())
    res = flowrun("convert", "promptflow", flow)
    assert res.code == 0, res.output
    assert "promptflow.contracts" not in res.stdout
    server.add(Reply(content="A logo in a frame."))
    run = flowrun("run", flow / "flowrun.yaml", "--json")  # not run from the flow's folder
    assert run.code == 0, run.stderr
    framed = png() + b"framed"
    assert json.loads(run.stdout)["outputs"] == {
        "answer": "A logo in a frame.",
        "about": f"Image image/png {len(png())} bytes; framed image/png {len(framed)} bytes, Image(",
    }
    (request,) = server.requests_to("/chat/completions")
    sent = [{"url": "data:image/png;base64," + base64.b64encode(framed).decode(), "detail": "auto"}]
    assert request.images == sent
    # the Python API, with the image given as a data: URL
    server.reset()
    server.add(Reply(content="A logo in a frame."))
    photo = "data:image/png;base64," + base64.b64encode(png()).decode()
    result = run_workflow(load_workflow(flow / "flowrun.yaml"), {"photo": photo})
    assert result.status == "succeeded", result.error
    assert result.outputs["answer"] == "A logo in a frame."
    (request,) = server.requests_to("/chat/completions")
    assert request.images == sent


def test_completion_sends_what_promptflow_sends(copy, monkeypatch):
    flow = copy("pf_completion")
    assert flowrun("convert", "promptflow", flow).code == 0
    with LoopbackServer() as server:  # its requests checked against the OpenAPI spec
        usage = {"prompt_tokens": 3, "completion_tokens": 2}
        server.add(Reply(content=" done.", usage=usage), endpoint="/completions", times=None)
        for key, value in server.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("MY_AZURE_API_BASE", server.url)
        monkeypatch.setenv("MY_AZURE_API_VERSION", "2024-02-01")
        run = flowrun("run", flow / "flowrun.yaml")
        assert run.code == 1
        assert (
            "complete:complete raised PromptflowToolError: connection 'my_azure' has no api_key: "
            "set MY_AZURE_API_KEY (or AZURE_OPENAI_API_KEY)"
        ) in run.stderr
        server.requests.clear()
        monkeypatch.setenv("MY_AZURE_API_KEY", "azure-secret")
        run = flowrun("run", flow / "flowrun.yaml", "--json")
        requests = server.requests_to("/completions")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["outputs"] == {"openai": " done.", "azure": " done."}
    assert result["steps"]["complete"]["calls"] == 2
    assert result["steps"]["complete"]["usage"]["prompt_tokens"] == 6
    first, second = requests
    # every parameter promptflow-tools passes, its defaults included (null where it passes None)
    common = {"suffix": None, "temperature": 1.0, "top_p": 1.0, "n": 1, "stream": False}
    common |= {"logprobs": None, "echo": False, "stop": None, "best_of": 1, "logit_bias": {}}
    assert first.body == common | {
        "prompt": "Say hello",
        "model": "gpt-3.5-turbo-instruct",
        "max_tokens": 5,
        "presence_penalty": None,
        "frequency_penalty": None,
        "user": "",
    }
    assert second.body == common | {
        "prompt": "Say hello twice",
        "model": "instruct",
        "max_tokens": 16,
        "presence_penalty": 0.5,
        "user": "",
    }
    assert second.query == "api-version=2024-02-01"
    assert second.headers["ms-azure-ai-promptflow-called-from"] == "aoai-tool"


def test_every_import_the_converter_accepts_is_in_the_stand_in(copy):
    # the converter reports a promptflow import the stand-in lacks; what it accepts must import
    import importlib

    from flowrun.convert.pf_python import _SHIMMED
    from flowrun.format.promptflow_stub import install_promptflow_stub

    install_promptflow_stub()
    missing = [
        f"{module}.{name}"
        for module, name in sorted(_SHIMMED)
        if not hasattr(importlib.import_module(module), name)
    ]
    assert missing == []
