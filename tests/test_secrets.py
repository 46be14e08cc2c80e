"""The API key never reaches the run store, stdout, stderr, logs or --json, even when echoed back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flowrun.testing import Reply
from tests.helpers import flowrun, flowrun_process
from tests.run_helpers import TWO_STEPS, write

KEY = "zq-Distinctive-Key-7f3a9c1e5b"  # not sk-shaped: it must be caught by value, not by shape


@pytest.fixture
def leaky_server(server, monkeypatch):
    """A server whose 401 error text and replies echo the key, as real proxies sometimes do."""
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server.add(
        Reply(status=401, error=f"Incorrect API key provided: {KEY}. Authorization: Bearer {KEY}"),
        match="second after",
    )
    server.add(Reply(content=f"your key is {KEY}"), match="first step")
    return server


def _home_bytes() -> bytes:
    """Every file under FLOWRUN_HOME (runs.db and its -wal/-shm, locks) as bytes."""
    home = Path(__import__("os").environ["FLOWRUN_HOME"])
    return b"".join(p.read_bytes() for p in sorted(home.rglob("*")) if p.is_file())


def test_the_key_is_never_stored_or_printed(leaky_server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    outputs = []
    as_json = flowrun("run", wf, "--json", "-q")
    assert as_json.code == 1
    doc = json.loads(as_json.stdout)
    assert "API error 401: Incorrect API key provided: [redacted]" in doc["error"]
    assert leaky_server.requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was used
    outputs.append(as_json.output)

    leaky_server.add(Reply(status=401, error=f"Incorrect API key provided: {KEY}"))
    text = flowrun_process("run", wf, "--debug", env={"OPENAI_LOG": "debug"})
    assert text.code == 1
    assert "Incorrect API key provided" in text.stderr
    outputs.append(text.output)

    run_id = doc["run_id"]
    for args in (
        ("runs", "list"),
        ("runs", "list", "--json"),
        ("runs", "show", run_id),
        ("runs", "show", run_id, "--json"),
    ):
        res = flowrun(*args)
        assert res.code == 0
        outputs.append(res.output)
    assert "[redacted]" in outputs[-1]

    for out in outputs:
        assert KEY not in out
    stored = _home_bytes()
    assert b"Incorrect API key provided" in stored  # the errors are there...
    assert KEY.encode() not in stored  # ...without the key


@pytest.mark.parametrize("before", ["bad key ", "a task-based plan, risk-free; key x-"])
def test_sk_shaped_keys_and_bearer_tokens_are_redacted(server, tmp_path, monkeypatch, before):
    """(Words with "sk-" inside, which cannot start a key, take the redaction another way.)"""
    other = "sk-proj-AbCdEf0123456789xyz"
    message = f"{before}{other}; Authorization: Bearer tok_123456789; xsk-not-a-key-itself"
    server.add(Reply(status=400, error=message))
    res = flowrun("run", write(tmp_path, TWO_STEPS), "--json")
    assert res.code == 1
    assert other not in res.output and "tok_123456789" not in res.output
    assert "xsk-not-a-key-itself" in res.output  # (not at the start of a word: no key shape)
    assert other.encode() not in _home_bytes()


def test_debug_tracebacks_are_redacted_like_the_error_line(server, tmp_path):
    """An exception message holding the key is printed redacted in the --debug traceback too."""
    wf = write(tmp_path, TWO_STEPS)
    res = flowrun_process(
        "run",
        wf,
        "--prices",
        tmp_path / f"prices-{KEY}.json",
        "--debug",
        env={"OPENAI_API_KEY": KEY},
    )
    assert res.code == 2
    assert "Traceback (most recent call last)" in res.stderr  # --debug shows it
    assert "[redacted]" in res.stderr
    assert KEY not in res.output
    assert server.requests == []


@pytest.mark.parametrize("via", ["live", "batch-api"])
def test_a_batch_never_stores_the_key_in_its_steps_history_or_transcripts(
    leaky_server, tmp_path, monkeypatch, via
):
    """A reply that echoes the key is a completed step, in the transcript and in the history
    row of a failed record (its second step got a 401 that echoes the key): stored without
    it, and shown without it."""
    monkeypatch.setenv("FLOWRUN_BATCH_POLL", "0.01,0.03")
    leaky_server.add(Reply(content=f"your key is {KEY}"), match="first step", times=None)
    leaky_server.add(Reply(status=401, error=f"Incorrect: {KEY}"), match="second after", times=None)
    if via == "batch-api":
        leaky_server.batch_api.fail(
            match="second after", status=401, message=f"Incorrect API key provided: {KEY}"
        )
    wf = write(tmp_path, TWO_STEPS)
    records = tmp_path / "in.jsonl"
    records.write_text('{"x": 1}\n{"x": 2}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    res = flowrun("run", wf, "--batch", records, "-o", out, "--via", via, "--json")
    assert res.code == 1, res.output
    batch = json.loads(res.stdout)["batch_id"]
    shown = flowrun("runs", "show", batch, "--record", "1", "--json")
    assert shown.code == 0, shown.output
    steps = json.loads(shown.stdout)["steps"]
    assert steps["first"]["output"] == "your key is [redacted]"
    assert "[redacted]" in json.dumps(steps["first"]["transcript"])
    for text in (res.output, shown.output, out.read_text(encoding="utf-8")):
        assert KEY not in text
    assert KEY.encode() not in _home_bytes()
