"""Batch API at scale: sequential turnarounds, wall, local time and memory of a whole
``flowrun run --via batch-api`` process.

Run it from the repository root (heavy: run it once or twice, not in a loop):

    python benchmarks/batch_api_scale.py [--records 100000] [--delay 30]

The diamond workflow (``a`` and ``b`` side by side, then ``join``: depth 2) over N records,
run as its own process (``python -m flowrun run ... --via batch-api``) against the loopback
Batch API in another process, whose batches complete ``--delay`` D seconds after they are
created. Printed:

- sequential turnarounds: the longest chain of batches each created after the one before it
  completed and holding requests of a record the one before held (from the server's log of
  creations and completions): the turnarounds a record waits through; goal: the DAG's
  depth, 2. The chain over all batches, related or not, is printed beside it;
- wall, against depth x D (the time the batches take): the rest is flowrun's local time plus
  the server's (it runs every line when a batch completes, on the same shared 2 cores);
- local time per record: the flowrun process's CPU time (user + sys) / N; goal < 0.5 ms;
- peak RSS of the flowrun process; goal < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DIAMOND_TEXT as DIAMOND  # benchmarks/common.py

REPO = Path(__file__).resolve().parent.parent
DEPTH = 2
GOAL_MS, GOAL_MB = 0.5, 300


SERVER = """
import sys, json
sys.path.insert(0, sys.argv[1])
from flowrun.testing import LoopbackServer
with LoopbackServer() as server:
    server.batch_api.completion_delay = float(sys.argv[2])
    print(server.url, flush=True)
    for line in sys.stdin:  # "log": what happened to the batches
        api = server.batch_api
        with server._lock:
            batches = [(b.id, len(b.custom_ids), b.status) for b in api.batches]
            events = list(api.events)
            records = {
                b.id: sorted({int(c[1 : c.index(".")]) for c in b.custom_ids})
                for b in api.batches
            }
        print(json.dumps({"batches": batches, "events": events, "records": records}), flush=True)
"""


def turnarounds(events: list[list[str]], records: dict[str, list[int]] | None = None) -> int:
    """The longest chain of batches each created after the previous one completed; given
    ``records`` (batch -> the records it holds requests of), only batches sharing a record
    chain: the turnarounds a record waits through one after another."""
    depth: dict[str, int] = {}
    done: list[str] = []
    held = {b: set(r) for b, r in (records or {}).items()}
    for what, batch_id in events:
        if what == "created":
            before = [depth[b] for b in done if records is None or held[b] & held[batch_id]]
            depth[batch_id] = 1 + max(before, default=0)
        else:
            done.append(batch_id)
    return max(depth.values(), default=0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--delay", type=float, default=30.0, help="D: seconds per batch")
    parser.add_argument(
        "--prefix",
        default="",
        help="a command the flowrun process runs under (a profiler: see instructions.py)",
    )
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="flowrun-bench-"))
    (work / "diamond.yaml").write_text(DIAMOND, encoding="utf-8")
    with (work / "in.jsonl").open("w", encoding="utf-8") as f:
        for i in range(args.records):
            text = f"ticket {i}: the printer on floor {i % 7} is out of toner"
            f.write(json.dumps({"text": text}) + "\n")
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(REPO), str(args.delay)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    url = server.stdout.readline().strip()
    env = {
        **os.environ,
        "OPENAI_BASE_URL": url,
        "OPENAI_API_KEY": "sk-bench",
        "FLOWRUN_HOME": str(work / "home"),
        "FLOWRUN_BATCH_POLL": "0.5,2",
        "FLOWRUN_BATCH_QUEUE_TOKENS": "1000000000",  # the benchmark's account: no queue limit
        "FLOWRUN_PROGRESS_EVERY": "3600",
    }
    command = shlex.split(args.prefix) + [sys.executable, "-m", "flowrun", "run"]
    command += [str(work / "diamond.yaml")]
    command += ["--batch", str(work / "in.jsonl"), "--output", str(work / "out.jsonl")]
    command += ["--via", "batch-api", "--json"]
    try:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        out = proc.stdout.read() if proc.stdout else b""  # type: ignore[union-attr]
        assert os.waitstatus_to_exitcode(status) == 0, out[-2000:]
        summary = json.loads(out)
        server.stdin.write("log\n")
        server.stdin.flush()
        log = json.loads(server.stdout.readline())
    finally:
        server.stdin.close()
        server.wait(timeout=60)
        # (a run of 100,000 records leaves about 500 MB: its run store, input and output)
        shutil.rmtree(work, ignore_errors=True)
    cpu = usage.ru_utime + usage.ru_stime
    rss_mb = usage.ru_maxrss / 1024
    turns = turnarounds(log["events"], log["records"])
    any_chain = turnarounds(log["events"])
    per_record = cpu * 1000 / args.records
    load = os.getloadavg()[0]
    print(
        f"Batch API at scale: diamond (depth {DEPTH}), {args.records:,} records, D = {args.delay:g} s"
    )
    print(f"  (load average {load:.1f} on {os.cpu_count()} cores while measuring)")
    print(f"  batches: {[(n, s) for _, n, s in log['batches']]}")
    print(f"  sequential turnarounds of a record: {turns} (goal {DEPTH})")
    print(
        f"  (longest chain of batches each created after another one completed, related or "
        f"not: {any_chain}; with first-round files still being created when the first "
        "batches end, later files chain on unrelated ones)"
    )
    print(
        f"  wall: {wall:.1f} s = {wall / (DEPTH * args.delay):.2f} x depth*D "
        f"({DEPTH * args.delay:.0f} s); the rest: {wall - DEPTH * args.delay:.1f} s"
    )
    user_ms, system_ms = (t * 1000 / args.records for t in (usage.ru_utime, usage.ru_stime))
    print(
        f"  local CPU time: {per_record:.3f} ms per record (goal < {GOAL_MS:g}; "
        f"user {user_ms:.3f} + system {system_ms:.3f})"
    )
    print(f"  peak RSS: {rss_mb:.0f} MB (goal < {GOAL_MB})")
    print(f"  records succeeded: {summary.get('succeeded')}")
    print(
        json.dumps(
            {
                "records": args.records,
                "delay_s": args.delay,
                "turnarounds": turns,
                "any_chain": any_chain,
                "wall_s": round(wall, 2),
                "wall_over_depth_d": round(wall / (DEPTH * args.delay), 3),
                "cpu_ms_per_record": round(per_record, 4),
                "peak_rss_mb": round(rss_mb, 1),
                "load": round(load, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
