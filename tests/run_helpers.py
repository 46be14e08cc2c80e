"""Helpers for the durable-run tests: workflows in tmp dirs, background CLI processes, the store."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.helpers import REPO

TWO_STEPS = """\
version: 1
name: two-steps
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 50
steps:
  first:
    type: chat
    prompt: "first step"
  second:
    type: chat
    prompt: "second after {{ steps.first.output }}"
outputs:
  a: "{{ steps.first.output }}"
  b: "{{ steps.second.output }}"
"""


class InFlight:
    """Counts the requests a loopback server is answering at once; ``most`` is the peak.

    Wrap a responder: ``server.default = InFlight().around(respond, seconds=0.05)``.
    """

    def __init__(self) -> None:
        import threading

        self.now = 0
        self.most = 0
        self._lock = threading.Lock()

    def around(self, respond: Callable[[Any], Any], seconds: float) -> Callable[[Any], Any]:
        def responder(req: Any) -> Any:
            with self._lock:
                self.now += 1
                self.most = max(self.most, self.now)
            time.sleep(seconds)
            with self._lock:
                self.now -= 1
            return respond(req)

        return responder


def write(folder: Path, text: str, name: str = "wf.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# ``python -m flowrun`` with Ctrl-C restored: a background job of a non-interactive shell (a CI
# script's ``cmd &``) starts with SIGINT ignored, and its children inherit that, so the tests
# that send SIGINT would test nothing there.
_AS_FLOWRUN = (
    "import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('flowrun', run_name='__main__', alter_sys=True)"
)


def start_flowrun(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> Any:
    """``python -m flowrun ARGS`` in the background (stdout/stderr piped, text mode)."""
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), full_env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-c", _AS_FLOWRUN, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )


def wait_for(predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (fails the test after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def store_path() -> Path:
    return Path(os.environ["FLOWRUN_HOME"]) / "runs.db"


def query(sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows from the run store file, read by a separate SQLite connection ([] if it is absent)."""
    if not store_path().exists():
        return []
    db = sqlite3.connect(store_path(), timeout=5)
    try:
        return db.execute(sql, params).fetchall()
    except sqlite3.OperationalError:  # the schema is not created yet
        return []
    finally:
        db.close()


def step_rows() -> dict[str, str]:
    """``{step_id: status}`` of every step row in the store."""
    return dict(query("SELECT step_id, status FROM steps"))


def only_run_id() -> str:
    rows = query("SELECT id FROM runs")
    assert len(rows) == 1, rows
    return rows[0][0]


def python_c(code: str, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """``python -c CODE ARGS`` in a fresh process, importing this checkout, with its own
    flowrun home (what a test reads of a whole process: the modules it loaded ...)."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "FLOWRUN_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )
