"""``python -m flowrun.testing`` from a user's terminal: start it, export what it prints, run
a workflow against it, Ctrl-C it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from tests.helpers import REPO, WORKFLOWS, flowrun_process


@pytest.fixture
def start(tmp_path):
    started: list[subprocess.Popen] = []

    def run(*args: str) -> tuple[subprocess.Popen, dict[str, str]]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flowrun.testing", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        started.append(proc)
        exports = {}
        for _ in range(2):  # the two export lines come first, then it serves
            key, _, value = proc.stdout.readline().strip().removeprefix("export ").partition("=")
            exports[key] = value
        return proc, exports

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return proc.returncode, err


def test_serve_scripted_replies_until_ctrl_c(start, tmp_path):
    replies = tmp_path / "replies.yaml"
    replies.write_text(
        "- match: Summarize\n  content: A short summary.\n"
        "- match: Title for\n  content: The Title\n  latency: 0.01\n"
    )
    proc, env = start("--replies", str(replies), "--latency", "0.01")
    assert env["OPENAI_BASE_URL"].startswith("http://127.0.0.1:")
    assert env["OPENAI_BASE_URL"].endswith("/v1")
    assert env["OPENAI_API_KEY"]
    res = flowrun_process("run", WORKFLOWS / "summarize.yaml", "-i", "text=hello", env=env)
    assert res.code == 0, res.stderr
    assert res.stdout == "summary: A short summary.\ntitle: The Title\n"
    code, err = stop(proc)
    assert code == 0
    assert err.splitlines()[0] == (
        f"flowrun loopback server at {env['OPENAI_BASE_URL']} (unscripted requests: echo; "
        f"2 scripted replies from {replies}; 0.01 s latency)"
    )
    assert err.splitlines()[-1] == "stopped after 2 requests"


def test_mock_answers_structured_output_and_failures_are_injected(start, tmp_path):
    proc, env = start("--mock", "--fail-every", "2", "--fail-status", "503")
    wf = WORKFLOWS / "support-triage.yaml"
    args = ("run", wf, "-i", "ticket=My order never came", "-i", "customer_id=c1", "--json")
    res = flowrun_process(*args, env=env)
    assert res.code == 0, res.stderr  # the SDK retried every injected 503
    assert '"category": "billing"' in res.stdout  # a valid instance of the schema's enum
    code, err = stop(proc)
    assert code == 0
    assert "every 2nd model request fails with 503" in err.splitlines()[0]


def test_legacy_completions_are_scripted_apart_from_chat(start, tmp_path):
    from openai import OpenAI

    replies = tmp_path / "replies.yaml"
    replies.write_text("- endpoint: completions\n  content: Hello, World!\n  times: forever\n")
    proc, env = start("--replies", str(replies), "--mock")
    client = OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"])
    done = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Write hello")
    assert done.choices[0].text == "Hello, World!"
    messages = [{"role": "user", "content": "Write hello"}]
    chat = client.chat.completions.create(model="gpt-4o-mini", messages=messages)
    assert chat.choices[0].message.content == "echo: Write hello"  # --mock's, not scripted
    code, err = stop(proc)
    assert code == 0
    assert err.splitlines()[-1] == "stopped after 2 requests"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (
            "- mach: Summarize\n  content: x\n",
            "entry 1: unknown key 'mach' (did you mean 'match'?)",
        ),
        ("content: x\n", "the replies file must hold a list of entries"),
        ("- {content: x, times: 0}\n", "entry 1: times must be a whole number >= 1 or forever"),
    ],
)
def test_a_bad_replies_file_is_one_line_and_exit_2(tmp_path, content, message):
    replies = tmp_path / "replies.yaml"
    replies.write_text(content)
    proc = subprocess.run(
        [sys.executable, "-m", "flowrun.testing", "--replies", str(replies)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert lines[0] == f"error: {replies}: {message}"
    assert lines[1].startswith("hint: each entry holds Reply fields")
    assert len(lines) == 2
