"""What durability costs: a run with the SQLite run store against the same run without it.

Run it from the repository root:

    python benchmarks/store.py [--steps 40] [--repeat 5]

A workflow of ``--steps`` independent chat steps runs against the loopback server (no latency)
with ``store=True`` (every step committed to ``runs.db`` the moment it completes) and with
``store=False``; best of ``--repeat`` each. Then the same workflow with ``--cache``-style
caching, second run (every reply from the store). Prints wall times, the per-step overhead of
the store, and the raw commit rate of ``RunStore.step_finished``. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# The encodings the test suite ships, so the benchmark needs no network either.
ENCODINGS = Path(__file__).resolve().parent.parent / "tests" / "data" / "tiktoken-cache"
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ENCODINGS))

from flowrun import load_workflow_text, run_workflow  # noqa: E402
from flowrun.results import StepResult  # noqa: E402
from flowrun.store.runs import RunStore  # noqa: E402
from flowrun.testing import LoopbackServer  # noqa: E402


def workflow(steps: int) -> str:
    body = "".join(f'  s{i}:\n    type: chat\n    prompt: "part {i}"\n' for i in range(steps))
    return (
        "version: 1\nname: bench\ndefaults:\n  model: gpt-4o-mini\n"
        f"  max_completion_tokens: 20\nsteps:\n{body}"
    )


def best(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home, LoopbackServer() as server:
        os.environ.update(server.env(), FLOWRUN_HOME=home)
        wf = load_workflow_text(workflow(args.steps))
        run_workflow(wf, store=False)  # warm up imports, tiktoken, the HTTP pool
        without = best(args.repeat, lambda: run_workflow(wf, store=False))
        stored = best(args.repeat, lambda: run_workflow(wf))
        run_workflow(wf, cache=True)
        cached = best(args.repeat, lambda: run_workflow(wf, cache=True))

        store = RunStore(Path(home) / "commits.db")
        store.start_run("bench", wf, {})
        result = StepResult(id="x", status="succeeded", output="y" * 200)
        n = 500
        started = time.perf_counter()
        for i in range(n):
            result.id = f"s{i}"
            store.step_finished("bench", result)
        commit_s = (time.perf_counter() - started) / n
        store.close()

    print(f"{args.steps} independent chat steps against the loopback server, best of {args.repeat}")
    print(f"  store=False           {without * 1000:8.1f} ms")
    print(
        f"  store=True            {stored * 1000:8.1f} ms  "
        f"(+{(stored - without) / args.steps * 1000:.2f} ms per step, x{stored / without:.2f})"
    )
    print(f"  cache=True (all hits) {cached * 1000:8.1f} ms  (0 requests)")
    print(
        f"  RunStore.step_finished: {commit_s * 1e6:.0f} us per committed step (WAL, synchronous=NORMAL)"
    )


if __name__ == "__main__":
    main()
