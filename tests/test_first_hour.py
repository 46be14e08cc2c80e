"""A new user's first hour, as sessions at the terminal (issue 20): help without a subcommand,
inputs from standard input, and the hints bad input gets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

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


SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour and style codes (not cursor moves)


def on_a_terminal(*args, env: dict[str, str]) -> tuple[int, str, str]:
    """``python -m flowrun ARGS`` with stderr on a pseudo-terminal: (exit code, stdout, stderr)."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowrun", *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=slave,
        env={**os.environ, "PYTHONPATH": str(REPO), "TERM": "xterm", "COLUMNS": "120", **env},
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    out = proc.stdout.read().decode()
    proc.wait(timeout=60)
    os.close(master)
    return proc.returncode, out, b"".join(chunks).decode(errors="replace")


TRIAGE = (
    "run",
    WORKFLOWS / "support-triage.yaml",
    "--mock",
    "-i",
    "ticket=Where is it?",
    "-i",
    "customer_id=c1",
)


def test_streamed_text_is_dimmed_on_a_terminal_unless_no_color():
    code, _, err = on_a_terminal(*TRIAGE, env={})
    assert code == 0, err
    assert "[draft] " in err and "\x1b[2m" in err
    code, _, err = on_a_terminal(*TRIAGE, env={"NO_COLOR": "1"})
    assert code == 0, err
    assert "[draft] " in err
    assert SGR.findall(err) == []


def test_the_batch_bar_has_no_styles_under_no_color_and_0_failed_is_not_red(tmp_path):
    records = tmp_path / "in.jsonl"
    records.write_text('{"text": "a"}\n{"text": "b"}\n')
    args = ("run", SUMMARIZE, "--mock", "--batch", records, "--output")
    code, _, err = on_a_terminal(*args, tmp_path / "o.jsonl", env={})
    assert code == 0, err
    assert "0 failed" in err and "\x1b[31m0 failed" not in err
    assert SGR.findall(err)  # styled otherwise (bold "batch", green cost)
    code, _, err = on_a_terminal(*args, tmp_path / "o2.jsonl", env={"NO_COLOR": "1"})
    assert code == 0, err
    assert "0 failed" in err
    assert SGR.findall(err) == []


def test_a_workflow_without_outputs_prints_its_last_steps_output(tmp_path):
    wf = tmp_path / "no-outputs.yaml"
    wf.write_text(
        "version: 1\nname: no-outputs\ninputs:\n  text: {type: string}\n"
        "defaults: {model: gpt-4o-mini}\nsteps:\n"
        "  first: {type: chat, prompt: 'one {{ inputs.text }}'}\n"
        "  second: {type: chat, prompt: 'two {{ steps.first.output }}'}\n"
    )
    res = flowrun("run", wf, "--mock", "-i", "text=x")
    assert res.code == 0, res.stderr
    assert res.stdout == "second: echo: two echo: one x\n"
    assert res.stderr.splitlines()[0] == "(no outputs: declared; the last step's output, second:)"


def test_nightly_report_writes_under_out_by_default_or_where_the_user_says(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = (
        "run",
        WORKFLOWS / "nightly-report.yaml",
        "--mock",
        "-i",
        f"events={WORKFLOWS / 'data' / 'shop-events.jsonl'}",
        "-i",
        "day=2026-12-02",
    )
    res = flowrun(*args)
    assert res.code == 0, res.stderr
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.md")] == [
        "out/reports/report-2026-12-02.md"
    ]
    res = flowrun(*args, "-i", f"out_dir={tmp_path / 'mine'}")
    assert res.code == 0, res.stderr
    assert (tmp_path / "mine" / "report-2026-12-02.md").is_file()


def test_the_batch_api_wave_is_a_line_of_its_own_under_the_bar(tmp_path):
    records = tmp_path / "in.jsonl"
    records.write_text('{"text": "a"}\n{"text": "b"}\n')
    code, _, err = on_a_terminal(
        "run", SUMMARIZE, "--mock", "--via", "batch-api", "--batch", records,
        "--output", tmp_path / "o.jsonl", env={"FLOWRUN_HOME": str(tmp_path / "home")},
    )  # fmt: skip
    assert code == 0, err
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", err)  # colours and cursor moves
    lines = [line.strip() for line in re.split(r"[\r\n]+", plain)]
    bar = next(line for line in reversed(lines) if line.startswith("batch ") and "ETA" in line)
    assert "━" * 40 in bar and "wave" not in bar  # the bar keeps its width at 120 columns
    assert any(line.startswith("wave 1 · ") for line in lines)


def test_verbose_shows_each_request_and_reply_as_it_goes():
    res = flowrun("run", SUMMARIZE, "--mock", "-v", "-i", "text=hello")
    assert res.code == 0, res.stderr
    calls = [line for line in res.stderr.splitlines() if line.startswith(("request ", "reply "))]
    assert calls[0] == "request summary: gpt-4o-mini, 2 messages, max 200 output tokens"
    assert re.fullmatch(
        r"reply   summary: gpt-4o-mini, \d+ prompt \+ \d+ completion tokens, \d+\.\d\ds", calls[1]
    )
    assert calls[2].startswith("request title: gpt-4o-mini, 1 message, ")  # after summary's reply
    assert calls[3].startswith("reply   title: gpt-4o-mini, ")
    assert len(calls) == 4
    quiet = flowrun("run", SUMMARIZE, "--mock", "-i", "text=hello")  # -v is for that command only
    assert not [line for line in quiet.stderr.splitlines() if line.startswith("request ")]
