"""kill -9 at random moments, resume, and count the calls paid for twice.

"Results are durable the moment they arrive": a call the server answered before the kill
should not be asked again by the resume. What cannot be saved is a reply the process had not
finished reading when it died, so a few repeats are inherent; this measures how many, and how
long before the kill their replies had been sent (the window in which an answered call is
still lost).

Run it from the repository root (once, not in a loop: the machine is shared):

    python benchmarks/kill_window.py [--trials 20] [--only single foreach batch]

For each scenario and trial: a fresh run store; ``flowrun run`` as a real process against a
loopback server in this process (every reply takes ``--latency`` seconds); ``SIGKILL`` at a
random moment of the run (uniform over the time a calibration run took); then the resume
(``flowrun resume RUN_ID``, or ``--resume`` for a batch) to the end. A *repeated call* is a
request whose reply the server had finished sending before the kill and that the resume
asked again (a request still in flight at the kill is asked again by design: not counted).
Printed per scenario: kills, repeated calls, repeated calls per kill, and for the repeated
calls how long before the kill the server had sent the reply (median and max, in ms).

Scenarios:

- ``single``: a chain of 8 chat steps (each step's result committed as the step ends);
- ``foreach``: one foreach step over 24 items, 4 at a time (each item committed as it ends);
- ``batch``: ``--batch`` over 40 records of a 2-step chain, concurrency 8 (a step that made a
  model call is committed as it completes, and a record's line written when it is next in
  order).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flowrun.testing import LoopbackServer  # noqa: E402

CHAIN = "version: 1\nname: chain\ndefaults:\n  model: gpt-4o-mini\n  max_completion_tokens: 20\nsteps:\n"
CHAIN += '  s0:\n    type: chat\n    prompt: "step 0"\n'
for _i in range(1, 8):
    CHAIN += f'  s{_i}:\n    type: chat\n    prompt: "step {_i} after {{{{ steps.s{_i - 1}.output }}}}"\n'

FOREACH = """\
version: 1
name: fan
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 20
steps:
  each:
    type: chat
    foreach: "{{ range(24) | list }}"
    max_concurrency: 4
    prompt: "item {{ item }}"
"""

BATCH = """\
version: 1
name: two
inputs:
  q: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 20
steps:
  a:
    type: chat
    prompt: "first {{ inputs.q }}"
  b:
    type: chat
    prompt: "second {{ inputs.q }} {{ steps.a.output }}"
outputs:
  b: "{{ steps.b.output }}"
"""


def flowrun(home: Path, server: LoopbackServer, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, **server.env(), "FLOWRUN_HOME": str(home)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "flowrun", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )


def prompt_of(req) -> str:
    return req.last_user_text if req.path.endswith("/chat/completions") else ""


class Scenario:
    def __init__(self, name: str, folder: Path) -> None:
        self.name = name
        self.folder = folder
        self.wf = folder / f"{name}.yaml"
        self.wf.write_text({"single": CHAIN, "foreach": FOREACH, "batch": BATCH}[name])
        self.data = folder / "records.jsonl"
        self.data.write_text("".join(json.dumps({"q": f"q{i}"}) + "\n" for i in range(40)))

    def start(self, home: Path, server: LoopbackServer) -> subprocess.Popen[bytes]:
        if self.name == "batch":
            out = home / "out.jsonl"
            return flowrun(home, server, "run", str(self.wf), "--batch", str(self.data),
                           "--output", str(out), "--concurrency", "8")  # fmt: skip
        return flowrun(home, server, "run", str(self.wf))

    def resume(self, home: Path, server: LoopbackServer) -> subprocess.Popen[bytes] | None:
        if self.name == "batch":
            out = home / "out.jsonl"
            return flowrun(home, server, "run", str(self.wf), "--batch", str(self.data),
                           "--output", str(out), "--concurrency", "8", "--resume")  # fmt: skip
        db = sqlite3.connect(home / "runs.db")
        try:
            row = db.execute("SELECT id FROM runs").fetchone()
        except sqlite3.OperationalError:  # killed while the store was being created
            row = None
        finally:
            db.close()
        return None if row is None else flowrun(home, server, "resume", row[0])


def trial(scenario: Scenario, server: LoopbackServer, at: float) -> tuple[int, list[float]]:
    """One kill at ``at`` seconds and the resume: (repeated calls, their windows in s)."""
    server.reset()
    with tempfile.TemporaryDirectory(dir=scenario.folder) as tmp:
        home = Path(tmp)
        proc = scenario.start(home, server)
        time.sleep(at)
        killed_at = time.monotonic()
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        time.sleep(0.05)  # a reply the server was writing at the kill gets its replied_at
        with server._lock:
            answered = {  # replies fully sent before the kill: calls paid for
                prompt_of(r): r.replied_at
                for r in server.requests
                if r.replied_at is not None and r.replied_at <= killed_at
            }
            before = len(server.requests)
        if not (home / "runs.db").exists():
            return 0, []  # killed before it started: nothing was paid
        resume = scenario.resume(home, server)
        if resume is None:  # killed before the run was stored: nothing was paid for
            return 0, []
        _, err = resume.communicate(timeout=600)
        if resume.returncode not in (0, 2):  # 2: the run had already finished
            raise SystemExit(f"the resume failed: {err.decode()[-500:]}")
        with server._lock:
            again = Counter(prompt_of(r) for r in server.requests[before:])
    repeated = [p for p in again if p in answered]
    return len(repeated), [killed_at - answered[p] for p in repeated]


def calibrate(scenario: Scenario, server: LoopbackServer) -> float:
    server.reset()
    with tempfile.TemporaryDirectory(dir=scenario.folder) as tmp:
        started = time.perf_counter()
        proc = scenario.start(Path(tmp), server)
        proc.communicate()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--only", nargs="*", default=["single", "foreach", "batch"])
    parser.add_argument("--seed", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    print(f"load average: {os.getloadavg()[0]:.2f} · {args.trials} kills per scenario · "
          f"reply latency {args.latency * 1000:.0f} ms")  # fmt: skip
    with LoopbackServer(latency=args.latency) as server, tempfile.TemporaryDirectory() as tmp:
        for name in args.only:
            scenario = Scenario(name, Path(tmp))
            whole = calibrate(scenario, server)
            repeats, windows = 0, []
            for _ in range(args.trials):
                n, w = trial(scenario, server, rng.uniform(0.0, whole))
                repeats += n
                windows += w
            window = (
                f"replies sent {statistics.median(windows) * 1000:.1f} ms (median), "
                f"{max(windows) * 1000:.1f} ms (max) before the kill"
                if windows
                else "no repeated call"
            )
            print(f"{name:8} run {whole:.2f}s · {args.trials} kills · {repeats} repeated "
                  f"calls ({repeats / args.trials:.2f} per kill) · {window}")  # fmt: skip


if __name__ == "__main__":
    main()
