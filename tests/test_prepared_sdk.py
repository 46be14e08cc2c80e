"""The SDK client of a single run is made in a background thread while the run is set up
(its CA certificates load meanwhile), and used only if it is the client the run would make."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from flowrun.provider import prepared_sdk
from flowrun.testing.loopback import LoopbackServer
from tests.helpers import flowrun_process
from tests.run_helpers import python_c

REPO = Path(__file__).resolve().parent.parent

# every SDK client made in the process, by the thread that made it
_RUN_AND_LIST = """
import sys, threading
import openai
made = []
real = openai.AsyncOpenAI.__init__
def recording(self, *args, **kwargs):
    made.append(threading.current_thread().name)
    real(self, *args, **kwargs)
openai.AsyncOpenAI.__init__ = recording
from flowrun.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
print("SDK CLIENTS:", ",".join(made) or "-")
"""

ONE_STEP = """\
version: 1
name: one
inputs:
  q: {type: string}
steps:
  answer:
    type: chat
    model: gpt-4o-mini
    prompt: "Say: {{ inputs.q }}"
outputs:
  answer: "{{ steps.answer.output }}"
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return python_c(_RUN_AND_LIST, *args, home=tmp_path / "home")


def test_a_single_run_uses_the_client_made_in_the_background(
    tmp_path: Path, flowrun_server: LoopbackServer
) -> None:
    flow = tmp_path / "one.yaml"
    flow.write_text(ONE_STEP, encoding="utf-8")
    proc = _run(tmp_path, "run", str(flow), "-i", "q=hello")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0].startswith("answer: ")
    assert len(flowrun_server.requests_to("/chat/completions")) == 1
    # one client, made by the background thread, and the request went through it
    assert out[-1] == "SDK CLIENTS: flowrun-sdk-client"


def test_a_run_of_named_servers_only_or_with_mock_makes_none_ahead(
    tmp_path: Path, flowrun_server: LoopbackServer
) -> None:
    flow = tmp_path / "one.yaml"
    named = ONE_STEP.replace(
        "steps:", f"servers:\n  local: {{base_url: '{flowrun_server.url}'}}\nsteps:"
    ).replace("model: gpt-4o-mini", "model: gpt-4o-mini\n    server: local")
    flow.write_text(named, encoding="utf-8")
    proc = _run(tmp_path, "run", str(flow), "-i", "q=hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "SDK CLIENTS: MainThread"
    proc = _run(tmp_path, "run", str(flow), "-i", "q=hello", "--mock")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "SDK CLIENTS: -"


def test_a_client_made_ahead_is_used_only_in_the_environment_it_was_made_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-one")
    prepared_sdk.start(lambda key: f"client of {key}")
    assert prepared_sdk.take("sk-one", None) == "client of sk-one"
    assert prepared_sdk.take("sk-one", None) is None  # taken once
    prepared_sdk.start(lambda key: f"client of {key}")
    assert prepared_sdk.take("sk-one", "http://elsewhere/v1") is None  # a URL of its own
    prepared_sdk.start(lambda key: f"client of {key}")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    assert prepared_sdk.take("sk-one", None) is None  # the environment changed since
    monkeypatch.delenv("OPENAI_API_KEY")
    prepared_sdk.start(lambda key: f"client of {key}")  # no key: nothing made ahead
    assert prepared_sdk.take("", None) is None


def test_a_client_that_fails_to_be_made_ahead_is_made_again_where_it_reports(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-one")

    def fails(key: str) -> object:
        raise ValueError("no")

    prepared_sdk.start(fails)
    assert prepared_sdk.take("sk-one", None) is None


def test_a_run_that_stops_before_taking_the_client_exits_cleanly(
    tmp_path: Path, flowrun_server: LoopbackServer
) -> None:
    """A run that stops before its first call (a price file that does not exist: exit 2)
    while the client is still being made must exit with its one line, every time. (The
    interpreter used to finalize while the thread was inside OpenSSL: a segfault in about
    half the runs.)"""
    flow = tmp_path / "one.yaml"
    flow.write_text(ONE_STEP, encoding="utf-8")
    for _ in range(8):
        res = flowrun_process("run", flow, "-i", "q=hi", "--prices", tmp_path / "none.json")
        assert res.code == 2, (res.code, res.stderr)
        assert res.stderr.startswith("error: "), res.stderr
    assert flowrun_server.requests == []
