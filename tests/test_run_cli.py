"""``flowrun run`` from the user's side: inputs, exit codes, the API key, the shipped examples."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import textwrap
from pathlib import Path

import click
import pytest

from flowrun.testing import Reply
from tests.helpers import REPO, WORKFLOWS, flowrun, flowrun_process

INPUTS = """\
    version: 1
    name: inputs
    inputs:
      text: {type: string}
      n: {type: integer, default: 3}
      flag: {type: boolean, default: false}
      tags: {type: array, default: []}
      ratio: {type: number, default: 0.5}
    defaults: {model: gpt-4o-mini}
    steps:
      s:
        type: chat
        prompt: "{{ inputs.text }}|n={{ inputs.n }}|flag={{ inputs.flag }}|tags={{ inputs.tags | tojson }}|ratio={{ inputs.ratio }}"
    outputs: {out: "{{ steps.s.output }}"}
"""


@pytest.fixture
def inputs_wf(tmp_path: Path) -> Path:
    path = tmp_path / "inputs.yaml"
    path.write_text(textwrap.dedent(INPUTS), encoding="utf-8")
    return path


def sent_prompt(server) -> str:
    (request,) = server.requests_to("/chat/completions")
    return request.last_user_text


def test_typed_inputs_from_the_command_line(server, inputs_wf):
    res = flowrun(
        "run", inputs_wf, "-i", "text=hello", "-i", "n=7", "-i", "flag=yes",
        "-i", 'tags=["a", 2]', "-i", "ratio=2.5",
    )  # fmt: skip
    assert res.code == 0, res.stderr
    assert sent_prompt(server) == 'hello|n=7|flag=True|tags=["a", 2]|ratio=2.5'
    assert res.stdout == 'out: echo: hello|n=7|flag=True|tags=["a", 2]|ratio=2.5\n'


def test_defaults_fill_optional_inputs(server, inputs_wf):
    assert flowrun("run", inputs_wf, "-i", "text=hi").code == 0
    assert sent_prompt(server) == "hi|n=3|flag=False|tags=[]|ratio=0.5"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "missing required input 'text' (give it with -i text=VALUE or --inputs-file)"),
        (
            ["-i", "text=x", "-i", "colour=red"],
            "unknown input 'colour' (the workflow declares: text, n, flag, tags, ratio)",
        ),
        (["-i", "text=x", "-i", "n=abc"], "input 'n' must be of type integer, got 'abc'"),
        (["-i", "text=x", "-i", "n=1.5"], "input 'n' must be of type integer, got '1.5'"),
        (["-i", "text=x", "-i", "flag=maybe"], "input 'flag' must be of type boolean, got 'maybe'"),
        (
            ["-i", "text=x", "-i", "tags=[1,"],
            "input 'tags' must be of type array (give JSON), got '[1,'",
        ),
        (
            ["-i", "text"],
            "-i expects KEY=VALUE, got 'text'\n"
            "hint: write -i NAME=VALUE, or -i NAME=@FILE to read the value from a file",
        ),
        (
            ["-i", "text=@/no/such/file.txt"],
            "input 'text': cannot read /no/such/file.txt: No such file or directory",
        ),
    ],
    ids=[
        "missing",
        "unknown",
        "not-int",
        "float-for-int",
        "bool",
        "bad-json",
        "no-equals",
        "no-file",
    ],
)
def test_bad_inputs_are_exit_2_with_one_clear_line(server, inputs_wf, args, message):
    res = flowrun("run", inputs_wf, *args)
    assert res.code == 2
    assert res.stdout == ""
    assert res.stderr == f"error: {message}\n"
    assert server.requests == []


def test_null_for_a_required_input_is_exit_2(server, inputs_wf, tmp_path):
    for name, text in (("in.json", '{"text": null}'), ("in.yaml", "text: ~\n")):
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        res = flowrun("run", inputs_wf, "--inputs-file", path)
        assert res.code == 2
        assert res.stderr == (
            "error: input 'text' is required and cannot be null; give it a string value\n"
        )
    assert server.requests == []


def test_inputs_file_json_and_yaml_and_command_line_wins(server, inputs_wf, tmp_path):
    as_json = tmp_path / "in.json"
    as_json.write_text(json.dumps({"text": "from json", "n": 11, "tags": ["j"]}))
    assert flowrun("run", inputs_wf, "--inputs-file", as_json).code == 0
    assert sent_prompt(server) == 'from json|n=11|flag=False|tags=["j"]|ratio=0.5'

    server.reset()
    as_yaml = tmp_path / "in.yaml"
    as_yaml.write_text("text: |\n  from yaml\nflag: true\nratio: 1\n")
    res = flowrun("run", inputs_wf, "--inputs-file", as_yaml, "-i", "n=5")
    assert res.code == 0, res.stderr
    assert sent_prompt(server) == "from yaml\n|n=5|flag=True|tags=[]|ratio=1"


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        (
            "in.json",
            '{"text": "x", "n": "seven"}',
            "input 'n' must be of type integer, got str: 'seven'",
        ),
        ("in.yaml", "text: x\ncolour: 1\n", "unknown input 'colour' (the workflow declares: "),
        ("in.yaml", "- a\n- b\n", "{p}: the inputs file must hold one mapping of input names"),
        (
            "in.json",
            "{oops",
            "the inputs file {p}: not valid JSON: Expecting property name enclosed in double "
            "quotes (line 1, column 2)",
        ),
    ],
    ids=["wrong-type", "unknown", "not-a-mapping", "bad-json"],
)
def test_a_bad_inputs_file_is_exit_2(server, inputs_wf, tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    res = flowrun("run", inputs_wf, "--inputs-file", path)
    assert res.code == 2
    assert res.stderr.startswith("error: " + message.format(p=path))
    assert len(res.stderr.splitlines()) == 1
    assert server.requests == []


def test_an_input_read_from_a_file_with_at(server, inputs_wf, tmp_path):
    article = tmp_path / "article.txt"
    article.write_text("Line one.\nLine two {{ not a template }}.\n")
    assert flowrun("run", inputs_wf, "-i", f"text=@{article}").code == 0
    assert sent_prompt(server).startswith("Line one.\nLine two {{ not a template }}.\n|n=3")


NO_KEY = [
    "error: OPENAI_API_KEY is not set",
    "hint: export it (for an OpenAI-compatible server, set OPENAI_BASE_URL and any key), "
    "or try the workflow offline with --mock",
]


def test_run_without_an_api_key_is_a_clear_error(server, inputs_wf, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY")
    res = flowrun("run", inputs_wf, "-i", "text=hi")
    assert res.code == 2
    assert res.stderr.splitlines() == NO_KEY
    assert server.requests == []
    assert flowrun("runs", "list").stdout.startswith("no runs yet")


def test_run_without_an_api_key_in_a_subprocess_has_no_traceback(server, inputs_wf):
    env = {"OPENAI_API_KEY": "", "OPENAI_BASE_URL": server.url}
    res = flowrun_process("run", inputs_wf, "-i", "text=hi", env=env)
    assert res.code == 2
    assert res.stderr.splitlines() == NO_KEY


def test_a_workflow_of_tool_steps_needs_no_api_key(inputs_wf, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    (tmp_path / "helpers.py").write_text("def shout(text: str) -> str:\n    return text.upper()\n")
    path = tmp_path / "tools.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: tools-only
            steps:
              s: {type: tool, function: "helpers:shout", args: {text: hi}}
            outputs: {out: "{{ steps.s.output }}"}
            """
        )
    )
    res = flowrun("run", path)
    assert res.code == 0, res.stderr
    assert res.stdout == "out: HI\n"


SECRET = "sk-proj-SECRETsecret1234567890abcdef"


def test_the_api_key_never_appears_in_any_output(server, inputs_wf, monkeypatch, _flowrun_home):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    server.add(Reply(status=401, error=f"Incorrect API key provided: {SECRET}."))
    failed = flowrun("run", inputs_wf, "-i", "text=hi", "--json")
    assert failed.code == 1
    assert "Incorrect API key provided: [redacted]" in json.loads(failed.stdout)["error"]
    ok = flowrun("run", inputs_wf, "-i", "text=hi")
    debug = flowrun("--debug", "run", inputs_wf, "-i", "text=hi")
    shown = flowrun("runs", "list", "--json").stdout
    for res in (failed, ok, debug):
        assert SECRET not in res.output
    assert SECRET not in shown
    stored = [p.read_bytes() for p in _flowrun_home.rglob("*") if p.is_file()]
    assert stored and not any(SECRET.encode() in data for data in stored)
    assert all(r.headers["authorization"] == f"Bearer {SECRET}" for r in server.requests)


# --- the shipped examples --------------------------------------------------------


def test_summarize_example(server):
    server.add(Reply(content="Owls hunt at night."), match="Summarize")
    server.add(Reply(content="Night Owls"), match="Title for")
    res = flowrun("run", WORKFLOWS / "summarize.yaml", "-i", "text=A long text about owls.")
    assert res.code == 0, res.stderr
    assert res.stdout == "summary: Owls hunt at night.\ntitle: Night Owls\n"
    summary, title = server.requests_to("/chat/completions")
    assert summary.body["model"] == "gpt-4o-mini"
    assert summary.messages[-1] == {"role": "user", "content": "A long text about owls."}
    assert summary.messages[0]["role"] == "system"
    assert "Owls hunt at night." in title.last_user_text


def test_vision_example_sends_the_image_and_reads_the_receipt(server):
    image = WORKFLOWS / "images" / "receipt.png"
    server.add(Reply(json={"merchant": "Corner Cafe", "total": 7.5, "currency": "EUR"}))
    res = flowrun("run", WORKFLOWS / "vision-receipt.yaml", "-i", f"image={image}", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"] == {"merchant": "Corner Cafe", "total": 7.5, "currency": "EUR"}
    (request,) = server.requests_to("/chat/completions")
    assert request.images == [
        {
            "url": "data:image/png;base64," + base64.b64encode(image.read_bytes()).decode(),
            "detail": "high",
        }
    ]
    assert "What merchant" in request.last_user_text
    assert request.body["model"] == "gpt-4o-mini"
    assert request.body["response_format"]["type"] == "json_schema"


def test_vision_example_accepts_an_image_url(server):
    url = "https://example.com/receipt.jpg"
    server.add(Reply(json={"merchant": "Shop", "total": 1, "currency": "USD"}))
    res = flowrun("run", WORKFLOWS / "vision-receipt.yaml", "-i", f"image={url}")
    assert res.code == 0, res.stderr
    (request,) = server.requests_to("/chat/completions")
    assert request.images == [{"url": url, "detail": "high"}]


def test_examples_are_valid():
    res = flowrun("validate", WORKFLOWS / "summarize.yaml", WORKFLOWS / "vision-receipt.yaml")
    assert res.code == 0, res.stderr
    assert (REPO / "workflows" / "images" / "receipt.png").read_bytes().startswith(b"\x89PNG")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_streamed_text_on_a_terminal_ends_its_line_before_the_cost_report(server, tmp_path):
    from flowrun.cli import main

    server.add(Reply(content="streamed words arrive"))
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nname: s\nsteps:\n"
        "  s: {type: chat, model: gpt-4o-mini, prompt: go, stream: true}\n"
        'outputs: {out: "{{ steps.s.output }}"}\n'
    )
    out, err = io.StringIO(), _Terminal()
    with (
        contextlib.redirect_stdout(out),
        contextlib.redirect_stderr(err),
        pytest.raises(SystemExit) as exited,
    ):
        main(["run", str(path)])
    assert exited.value.code in (0, None)
    lines = click.unstyle(err.getvalue()).splitlines()
    # the step's label and its streamed text, on whole lines (above the steps' progress)
    streamed = lines.index("[s] streamed words arrive")
    header = [
        "step", "status", "model", "calls", "prompt", "completion", "cost", "time",
    ]  # fmt: skip
    assert header in [line.split() for line in lines[streamed + 1 :]]
    assert out.getvalue() == "out: streamed words arrive\n"
