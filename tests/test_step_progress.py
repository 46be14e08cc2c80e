"""A single run's step progress on a terminal; nothing extra off a terminal or with -q."""

from __future__ import annotations

import os
import pty
import subprocess
import sys

from flowrun.testing import Reply
from tests.helpers import REPO, flowrun
from tests.run_helpers import TWO_STEPS, write


def _run_on_a_terminal(*args: str) -> tuple[int, str]:
    """``python -m flowrun ARGS`` with stderr on a pseudo-terminal; what the terminal got."""
    master, slave = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "100"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowrun", *args],
        stdout=subprocess.DEVNULL,
        stderr=slave,
        env=env,
    )
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the other side closed
            break
        if not chunk:
            break
        seen += chunk
    os.close(master)
    return proc.wait(timeout=60), seen.decode("utf-8", "replace")


def test_a_terminal_shows_each_step_running_then_done_with_time_and_cost(server, tmp_path):
    server.add(Reply(content="one", latency=0.6), match="first step")
    wf = write(tmp_path, TWO_STEPS)
    code, screen = _run_on_a_terminal("run", str(wf))
    assert code == 0, screen
    waiting, running, done = (screen.find(w) for w in ("waiting", "running", "succeeded"))
    # while the first step runs the second waits; later both are done, with time and cost
    assert 0 <= waiting < done and 0 <= running < done, screen
    assert "\x1b[1A" in screen  # redrawn in place (cursor up), not printed line after line
    finished = screen[done:]
    assert "$0.0" in finished and "s  $" in finished
    assert "cost" in screen.lower()  # the usual report follows


def test_no_progress_off_a_terminal_or_with_quiet(server, tmp_path):
    wf = write(tmp_path, TWO_STEPS)
    res = flowrun("run", wf)  # stderr is not a terminal here
    assert res.code == 0, res.stderr
    assert "waiting" not in res.stderr and "running" not in res.stderr
    assert "\x1b[" not in res.stderr
    code, screen = _run_on_a_terminal("run", str(wf), "-q")
    assert code == 0 and "running" not in screen and "waiting" not in screen
