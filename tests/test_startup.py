"""What a single run loads before its first request: nothing it does not use.

A cron job pays ``flowrun run``'s start-up on every run (benchmarks/side_by_side.py measures
it against a hand-written SDK script); these tests keep the modules a one-step run has no use
for out of it, and check that the run still does what it did.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.helpers import flowrun_process
from tests.run_helpers import python_c

_RUN_AND_LIST = """
import sys
from flowrun.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert not exc.code, exc.code
unused = ("networkx", "flowrun.batch", "flowrun.batch.modes", "flowrun.engine.aggregate", "jinja2")
print("IMPORTED:", ",".join(sorted(m for m in unused if m in sys.modules)) or "-")
"""

ONE_STEP = """\
version: 1
name: one
inputs:
  q: {type: string}
steps:
  first:
    type: chat
    model: gpt-4o-mini
    prompt: "Say: {{ inputs.q }}"
  second:
    type: chat
    model: gpt-4o-mini
    prompt: "Again: {{ steps.first.output }}"
outputs:
  answer: "{{ steps.second.output }}"
"""


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return python_c(_RUN_AND_LIST, *args, home=tmp_path / "home")


def test_a_single_run_loads_neither_networkx_nor_the_batch_code_nor_jinja(tmp_path: Path) -> None:
    # its templates only place values: read and rendered without Jinja (simple_templates)
    flow = tmp_path / "one.yaml"
    flow.write_text(ONE_STEP, encoding="utf-8")
    proc = _run(tmp_path, "run", str(flow), "-i", "q=hello", "--mock")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    # the steps still run in dependency order: the second step saw the first one's output
    assert out[0] == "answer: echo: Again: echo: Say: hello"
    assert out[-1] == "IMPORTED: -"
    assert "succeeded" in proc.stderr


def test_a_batch_run_loads_the_batch_code_but_not_networkx(tmp_path: Path) -> None:
    flow = tmp_path / "one.yaml"
    flow.write_text(ONE_STEP, encoding="utf-8")
    records = tmp_path / "in.jsonl"
    records.write_text('{"q": "a"}\n{"q": "b"}\n', encoding="utf-8")
    out = tmp_path / "out.jsonl"
    proc = _run(tmp_path, "run", str(flow), "--batch", str(records), "-o", str(out), "--mock")
    assert proc.returncode == 0, proc.stderr
    imported = proc.stdout.splitlines()[-1].removeprefix("IMPORTED: ").split(",")
    assert "flowrun.batch.modes" in imported and "networkx" not in imported
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2
    assert "Again: echo: Say: a" in lines[0] and "Again: echo: Say: b" in lines[1]


def test_a_template_that_needs_jinja_loads_it_and_renders_as_before(tmp_path: Path) -> None:
    flow = tmp_path / "one.yaml"
    flow.write_text(
        ONE_STEP.replace("{{ inputs.q }}", "{{ inputs.q | upper }}{% if true %}!{% endif %}"),
        encoding="utf-8",
    )
    proc = _run(tmp_path, "run", str(flow), "-i", "q=hello", "--mock")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    assert out[0] == "answer: echo: Again: echo: Say: HELLO!"
    assert out[-1] == "IMPORTED: jinja2"


def test_a_run_process_starts_without_collector_passes_and_runs_with_the_collector_on(
    tmp_path: Path,
) -> None:
    # the console script (python -m flowrun run ...): start-up with the collector off, then
    # what start-up made frozen and the collector on again before the steps (cli.startup)
    (tmp_path / "gc_state.py").write_text(
        "import gc\n"
        "def state() -> str:\n"
        "    return f'enabled={gc.isenabled()} frozen={gc.get_freeze_count() > 0}'\n",
        encoding="utf-8",
    )
    flow = tmp_path / "tool.yaml"
    flow.write_text(
        "version: 1\nname: tool\nsteps:\n  s: {type: tool, function: 'gc_state:state'}\n"
        "outputs:\n  state: '{{ steps.s.output }}'\n",
        encoding="utf-8",
    )
    console = flowrun_process(
        "run", flow, env={"FLOWRUN_HOME": str(tmp_path / "home")}, timeout=120
    )
    assert console.code == 0, console.stderr
    assert console.stdout.splitlines()[0] == "state: enabled=True frozen=True"
    # a program that calls main(argv) itself keeps its collector as it is
    proc = _run(tmp_path, "run", str(flow))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "state: enabled=True frozen=False"


def test_an_invalid_file_given_to_run_is_still_one_line_and_exit_2(tmp_path: Path) -> None:
    flow = tmp_path / "bad.yaml"
    flow.write_text("version: 1\nname: bad\nsteps: {}\n", encoding="utf-8")
    res = flowrun_process("run", flow, env={"FLOWRUN_HOME": str(tmp_path / "home")}, timeout=120)
    assert res.code == 2
    assert res.stderr.startswith(f"{flow}:3:")
    assert "Traceback" not in res.stderr


def test_validate_turns_the_collector_on_again_once_its_first_file_is_read(tmp_path: Path) -> None:
    # each tool module says, as validate imports it, how the collector is
    for name in ("first", "second"):
        (tmp_path / f"{name}_tool.py").write_text(
            "import gc, sys\n"
            f"print('{name}: enabled', gc.isenabled(), 'frozen', gc.get_freeze_count() > 0,"
            " file=sys.stderr)\n"
            "def go() -> str:\n    return 'x'\n",
            encoding="utf-8",
        )
        (tmp_path / f"{name}.yaml").write_text(
            f"version: 1\nname: {name}\nsteps:\n  s: {{type: tool, function: '{name}_tool:go'}}\n",
            encoding="utf-8",
        )
    res = flowrun_process(
        "validate",
        "first.yaml",
        "second.yaml",
        env={"FLOWRUN_HOME": str(tmp_path / "home")},
        cwd=tmp_path,
        timeout=120,
    )
    assert res.code == 0, res.stderr
    assert "first: enabled False frozen False" in res.stderr
    assert "second: enabled True frozen True" in res.stderr
    assert res.stdout.splitlines() == ["first.yaml: ok (1 step)", "second.yaml: ok (1 step)"]
