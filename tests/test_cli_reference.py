"""The CLI explains itself: docs/cli.md matches --help, every command has a summary and an example."""

from __future__ import annotations

import re

import pytest

from flowrun.cli.app import cli
from flowrun.cli.reference import cli_reference, iter_commands
from tests.helpers import REPO, flowrun

COMMANDS = [path for path, _, _ in iter_commands(cli) if path]


def test_docs_cli_md_is_what_the_commands_print() -> None:
    committed = (REPO / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == cli_reference(), (
        "docs/cli.md is stale: python -m flowrun.cli.reference > docs/cli.md"
    )


def test_flowrun_help_lists_every_command_with_a_whole_one_line_summary() -> None:
    res = flowrun("--help")
    assert res.code == 0
    listing = res.stdout.split("Commands:\n", 1)[1].split("\n\n")[0]  # (the epilog follows)
    top = sorted({path[0] for path in COMMANDS})
    assert re.findall(r"^  (\S+) ", listing, re.M) == top
    for line in listing.splitlines():
        assert re.match(r"^  \S+ +\S", line), f"a summary spans two lines: {line!r}"
        assert not line.endswith("..."), f"a summary is cut short: {line!r}"


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_every_command_help_has_an_example(path: tuple[str, ...]) -> None:
    res = flowrun(*path, "--help")
    assert res.code == 0, res.output
    assert re.search(r"^  Examples?\b.*:\n    flowrun ", res.stdout, re.M), res.stdout


@pytest.mark.parametrize(
    ("args", "message", "command"),
    [
        (["graph", "x.yaml", "--format", "png"], "Invalid value for '--format'", "flowrun graph"),
        (["run"], "Missing argument 'FILE'.", "flowrun run"),
        (["bogus"], "No such command 'bogus'.", "flowrun"),
    ],
)
def test_a_bad_command_line_is_one_error_line_and_where_to_look(
    args: list[str], message: str, command: str
) -> None:
    res = flowrun(*args)
    assert res.code == 2
    error, hint = res.stderr.splitlines()
    assert error.startswith(f"error: {message}")
    assert hint == f"hint: see '{command} --help'"
