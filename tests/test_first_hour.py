"""A new user's first hour, as sessions at the terminal (issue 20): help without a subcommand,
inputs from standard input, and the hints bad input gets."""

from __future__ import annotations

import pytest

from tests.helpers import WORKFLOWS, flowrun, flowrun_process

SUMMARIZE = WORKFLOWS / "summarize.yaml"


@pytest.mark.parametrize("group", [[], ["runs"], ["batches"], ["threads"], ["convert"]])
def test_a_group_without_a_subcommand_prints_its_help(group):
    res = flowrun(*group)
    assert res.code == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith(f"Usage: {' '.join(['flowrun', *group])} [OPTIONS] COMMAND")
    assert "\nCommands:\n" in res.stdout  # the normal, multi-line help


def test_inputs_file_dash_reads_json_from_stdin():
    res = flowrun_process(
        "run", SUMMARIZE, "--mock", "--inputs-file", "-", stdin='{"text": "piped in"}'
    )
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[0] == "summary: echo: piped in"


def test_an_input_value_from_stdin():
    res = flowrun_process("run", SUMMARIZE, "--mock", "-i", "text=@-", stdin="a long article\n")
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[0] == "summary: echo: a long article"


def test_stdin_is_read_once():
    res = flowrun_process(
        "run", SUMMARIZE, "--mock", "-i", "text=@-", "--inputs-file", "-", stdin="x"
    )
    assert res.code == 2
    assert res.stderr.splitlines() == [
        "error: standard input can be read only once, but -i text=@- and --inputs-file - "
        "both read it",
        "hint: read the other values from files (KEY=@path, --inputs-file PATH)",
    ]


def test_stdin_inputs_that_are_not_a_mapping():
    res = flowrun_process("run", SUMMARIZE, "--mock", "--inputs-file", "-", stdin="[1, 2]")
    assert res.code == 2
    assert res.stderr.splitlines()[0] == (
        "error: standard input: the inputs must be one mapping of input names to values"
    )
    assert res.stderr.splitlines()[1].startswith("hint: pipe e.g.")


def test_a_misspelt_input_gets_a_did_you_mean():
    res = flowrun("run", SUMMARIZE, "--mock", "-i", "txt=hello")
    assert res.code == 2
    assert res.stderr == (
        "error: unknown input 'txt' (did you mean 'text'?) (the workflow declares: text)\n"
    )
    assert res.stdout == ""
