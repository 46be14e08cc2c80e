"""Cron safety: --no-overlap, --quiet, and the examples of docs/cron.md actually work."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys

from flowrun import load_workflow
from flowrun.store.locking import workflow_lock
from flowrun.testing import Reply
from tests.helpers import REPO, WORKFLOWS, flowrun
from tests.run_helpers import TWO_STEPS, start_flowrun, step_rows, wait_for, write

CRON_DOC = (REPO / "docs" / "cron.md").read_text(encoding="utf-8")


def test_no_overlap_refuses_a_second_run_while_the_first_is_running(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    server.add(Reply(content="slow", latency=30), match="second after")
    first = start_flowrun("run", wf, "--no-overlap")
    try:
        wait_for(lambda: step_rows() == {"first": "succeeded"}, what="the first run's first step")
        wait_for(lambda: len(server.requests) == 2, what="the first run's second request")
        sent = len(server.requests)
        res = flowrun("run", wf, "--no-overlap")
        assert res.code == 1
        assert re.fullmatch(
            re.escape(
                f"error: another run of {wf.resolve()} is still in progress (pid {first.pid}, "
            )
            + r"started at \S+\); not starting a second one",
            res.stderr.strip(),
        )
        assert len(server.requests) == sent  # the refused run called nothing

        other = write(tmp_path, TWO_STEPS, "other.yaml")
        assert flowrun("run", other, "--no-overlap").code == 0  # other files are not blocked
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=20)
    assert flowrun("run", wf, "--no-overlap").code == 0  # the lock went with the process


def test_resume_no_overlap_refuses_while_a_run_of_the_workflow_is_running(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    server.add(Reply(status=400, error="bad request"), match="second after")
    assert flowrun("run", wf).code == 1
    [failed] = json.loads(flowrun("runs", "list", "--json").stdout)
    server.add(Reply(content="slow", latency=30), match="second after")
    running = start_flowrun("run", wf, "--no-overlap")
    try:
        wait_for(lambda: len(server.requests) == 4, what="the running run's second request")
        res = flowrun("resume", failed["run_id"], "--no-overlap")
        assert res.code == 1
        assert re.fullmatch(
            re.escape(
                f"error: another run of {wf.resolve()} is still in progress (pid {running.pid}, "
            )
            + r"started at \S+\); not starting a second one",
            res.stderr.strip(),
        )
        assert len(server.requests) == 4  # the refused resume called nothing
    finally:
        running.send_signal(signal.SIGTERM)
        running.communicate(timeout=20)
    res = flowrun("resume", failed["run_id"], "--no-overlap", "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["run_id"] == failed["run_id"]


def test_quiet_prints_nothing_on_success(server, tmp_path):
    res = flowrun("run", write(tmp_path, TWO_STEPS), "--quiet")
    assert (res.code, res.stdout, res.stderr) == (0, "", "")
    assert len(server.requests) == 2


def test_quiet_prints_only_the_error(server, tmp_path):
    server.add(Reply(status=400, error="bad request"), match="second after")
    res = flowrun("run", write(tmp_path, TWO_STEPS), "--quiet")
    assert res.code == 1
    assert res.stdout == ""
    [error, hint] = res.stderr.splitlines()
    assert error == "error: step 'second' failed: API error 400: bad request"
    assert hint.startswith("hint: completed steps are saved") and "flowrun resume " in hint


def test_the_documented_crontab_command_runs(server, tmp_path):
    line = next(
        ln for ln in CRON_DOC.splitlines() if "flowrun run" in ln and not ln.startswith("#")
    )
    command = re.search(r"flowrun run (.*?) >>", line).group(1)
    args = shlex.split(command)
    assert {"--no-overlap", "--quiet", "--max-cost"} <= set(args)
    wf = write(tmp_path, TWO_STEPS.replace("name: two-steps", "name: triage"), "triage.yaml")
    (tmp_path / "inbox.json").write_text("{}")
    args = [str(tmp_path / a) if a in ("triage.yaml", "inbox.json") else a for a in args]
    res = flowrun("run", *args)
    assert (res.code, res.stdout, res.stderr) == (0, "", "")
    assert len(server.requests) == 2
    assert json.loads(flowrun("runs", "list", "--json").stdout)[0]["path"] == str(wf.resolve())


def _doc_script(tmp_path):
    section = CRON_DOC[CRON_DOC.index("## Embedding the executor") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    path = tmp_path / "nightly.py"
    path.write_text(code, encoding="utf-8")
    return path


def _run_script(script, *args):
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=60,
    )


def test_the_documented_python_script_runs(server, tmp_path):
    script = _doc_script(tmp_path)
    text = tmp_path / "today.txt"
    text.write_text("The quarterly report is late.")
    server.add(Reply(content="The report is late."), match="Summarize in one sentence")

    done = _run_script(script, WORKFLOWS / "summarize.yaml", text)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "The report is late.\n"
    assert len(server.requests) == 2
    [run] = json.loads(flowrun("runs", "list", "--json").stdout)
    assert run["status"] == "succeeded"

    server.add(Reply(status=400, error="bad request"), match="Title for")
    failed = _run_script(script, WORKFLOWS / "summarize.yaml", text)
    assert failed.returncode == 1
    run_id = json.loads(flowrun("runs", "list", "--json").stdout)[0]["run_id"]
    assert f"flowrun resume {run_id}" in failed.stderr

    with workflow_lock(load_workflow(WORKFLOWS / "summarize.yaml")):
        blocked = _run_script(script, WORKFLOWS / "summarize.yaml", text)
    assert blocked.returncode == 1
    assert "is still in progress" in blocked.stderr

    invalid = _run_script(script, tmp_path / "missing.yaml", text)
    assert invalid.returncode == 2
    assert "missing.yaml:1:1: no such file" in invalid.stderr
