"""Bad files and arguments are exit 2 with one line, never a hang or an internal error."""

from __future__ import annotations

import os
import sys

import pytest

from tests.helpers import WORKFLOWS, flowrun, flowrun_process


def one_line_error(res, code: int = 2) -> str:
    assert res.code == code, res.output
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    return res.stderr.strip().splitlines()[0]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_validate_refuses_a_fifo_instead_of_hanging(tmp_path):
    fifo = tmp_path / "wf.yaml"
    os.mkfifo(fifo)
    res = flowrun_process("validate", fifo, timeout=60)  # reading it would block forever
    assert (
        one_line_error(res) == f"{fifo}:1:1: cannot read the file: not a regular file "
        "(a pipe, device or socket is not read)"
    )


def test_invalid_utf8_in_an_input_file_is_exit_2(tmp_path, server):
    bad = tmp_path / "text.txt"
    bad.write_bytes(b"caf\xe9 au lait")
    res = flowrun("run", WORKFLOWS / "summarize.yaml", "-i", f"text=@{bad}")
    assert one_line_error(res) == f"error: input 'text': {bad}: not UTF-8 text (byte 3 is 0xe9)"
    inputs = tmp_path / "inputs.json"
    inputs.write_bytes(b'{"text": "caf\xe9"}')
    res = flowrun("run", WORKFLOWS / "summarize.yaml", "--inputs-file", inputs)
    assert one_line_error(res).startswith(f"error: the inputs file {inputs}: not UTF-8 text")
    assert server.requests == []


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX argv bytes")
def test_invalid_utf8_in_a_command_line_value_is_exit_2(tmp_path):
    arg = os.fsdecode(b"text=caf\xe9")  # what Python makes of bytes that are not UTF-8
    res = flowrun_process("run", WORKFLOWS / "summarize.yaml", "--mock", "-i", arg)
    assert one_line_error(res) == "error: input 'text': the value is not UTF-8 text (character 4)"


def test_a_workflow_file_that_is_not_utf8_is_exit_2(tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_bytes(b"version: 1\nname: caf\xe9\n")
    res = flowrun("validate", wf)
    assert (
        one_line_error(res) == f"{wf}:1:1: cannot read the file: not UTF-8 text (byte 20 is 0xe9)"
    )


@pytest.mark.parametrize(
    "args",
    [
        ("runs", "list", "--limit", str(10**20)),
        ("batches", "list", "--limit", str(10**20)),
        (
            "run",
            str(WORKFLOWS / "summarize.yaml"),
            "--batch",
            "x.jsonl",
            "--concurrency",
            str(10**20),
        ),
    ],
    ids=["runs-list", "batches-list", "concurrency"],
)
def test_absurd_numbers_are_refused_on_the_command_line(args):
    res = flowrun(*args)
    assert "is not in the range" in one_line_error(res)
