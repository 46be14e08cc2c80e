"""A new user's first hour, as sessions at the terminal (issue 20): help without a subcommand,
inputs from standard input, and the hints bad input gets."""

from __future__ import annotations

import shutil

import pytest

from tests.helpers import REPO, WORKFLOWS, flowrun, flowrun_process

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


MODELINE = "# yaml-language-server: $schema="


def test_init_points_its_modeline_at_a_schema_that_exists(tmp_path, monkeypatch):
    project = tmp_path / "project"
    (project / "flows").mkdir(parents=True)
    monkeypatch.chdir(project)
    res = flowrun("init", "explain", "--dir", "flows")
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines()[0] == (
        "wrote flows/schemas/workflow.schema.json (the file format, for completion in editors)"
    )
    first = (project / "flows" / "explain.yaml").read_text().splitlines()[0]
    assert first == MODELINE + "schemas/workflow.schema.json"
    written = (project / "flows" / "schemas" / "workflow.schema.json").read_text()
    assert written == flowrun("schema").stdout

    # a second workflow in the same project finds that schema instead of writing another
    (project / "flows" / "more").mkdir()
    res = flowrun("init", "second", "--dir", "flows/more")
    assert res.code == 0, res.stderr
    assert "schema" not in res.stdout
    first = (project / "flows" / "more" / "second.yaml").read_text().splitlines()[0]
    assert first == MODELINE + "../schemas/workflow.schema.json"


def test_init_in_the_repository_uses_the_modeline_readme_shows():
    readme = (REPO / "README.md").read_text()
    shown = next(line for line in readme.splitlines() if line.startswith(MODELINE))
    target = REPO / "workflows" / "started-by-a-test.yaml"
    try:
        res = flowrun("init", target.stem, "--dir", REPO / "workflows")
        assert res.code == 0, res.stderr
        assert target.read_text().splitlines()[0] == shown
    finally:
        target.unlink(missing_ok=True)


def test_convert_writes_a_modeline_only_to_a_schema_that_exists(tmp_path):
    flow = tmp_path / "repo" / "flows" / "ticket-triage"
    shutil.copytree(REPO / "examples" / "promptflow" / "ticket-triage", flow)
    assert flowrun("convert", "promptflow", flow).code == 0
    assert MODELINE not in (flow / "flowrun.yaml").read_text()

    (tmp_path / "repo" / "schemas").mkdir()
    shutil.copy(REPO / "schemas" / "workflow.schema.json", tmp_path / "repo" / "schemas")
    res = flowrun("convert", "promptflow", flow, "--force")
    assert res.code == 0, res.stderr
    lines = (flow / "flowrun.yaml").read_text().splitlines()
    assert lines[2] == MODELINE + "../../schemas/workflow.schema.json"
    assert flowrun("validate", flow / "flowrun.yaml").code == 0


def test_help_says_where_the_run_store_is_and_how_to_complete():
    res = flowrun("--help")
    assert res.code == 0
    epilog = " ".join(res.stdout.split("Commands:")[1].split())
    assert (
        "Run store (runs, cache, threads, locks): $FLOWRUN_HOME, default the per-user state "
        "directory: ~/.local/state/flowrun (Linux)" in epilog
    )
    assert 'Shell completion: eval "$(flowrun completion bash)" (or zsh, fish).' in epilog


def test_shell_completion_completes_commands(tmp_path):
    script = flowrun("completion", "bash")
    assert script.code == 0
    assert "_FLOWRUN_COMPLETE=bash_complete" in script.stdout
    res = flowrun_process(
        env={"_FLOWRUN_COMPLETE": "bash_complete", "COMP_WORDS": "flowrun ru", "COMP_CWORD": "1"}
    )
    assert res.code == 0, res.stderr
    assert res.stdout.splitlines() == ["plain,run", "plain,runs"]


def test_completion_for_an_unknown_shell_is_one_line_and_exit_2():
    res = flowrun("completion", "tcsh")
    assert res.code == 2
    assert res.stderr.splitlines() == [
        "error: Invalid value for '{bash|zsh|fish}': 'tcsh' is not one of 'bash', 'zsh', 'fish'.",
        "hint: see 'flowrun completion --help'",
    ]
