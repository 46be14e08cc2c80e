"""The history and the viewer over a big store: printed figures, never asserted.

Run it from the repository root:

    python benchmarks/history.py [--runs 10000] [--records 100000] [--repeat 3]

It fills a fresh store (``FLOWRUN_HOME`` in a temporary folder) with ``--runs`` single runs
(two steps each, with transcripts) and one batch of ``--records`` records, then times, whole
process, ``flowrun runs list`` and ``flowrun runs show BATCH`` beside a hand-written
``python -c`` sqlite3 script that reads the same 20 newest rows (the floor: interpreter
start-up plus one query), and, in process, the viewer's first page and the batch's page
(first page of records) over HTTP. Goals: runs list < 0.5 s, viewer pages < 300 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOAL_LIST_S = 0.5
GOAL_PAGE_S = 0.3
WORKFLOW = """\
version: 1
name: bench-{n}
steps:
  ask: {{type: chat, model: gpt-4o-mini, prompt: "q"}}
  answer: {{type: chat, model: gpt-4o-mini, prompt: "{{{{ steps.ask.output }}}}"}}
"""
TRANSCRIPT = json.dumps(
    [
        {
            "kind": "chat",
            "request": {
                "model": "gpt-4o-mini",
                "messages": [{"role": "user", "content": "q" * 400}],
            },
            "latency_s": 0.4,
            "retries": 0,
            "reply": {"content": "a" * 300, "finish_reason": "stop", "usage": {}},
        }
    ]
)


def fill(home: Path, runs: int, records: int) -> str:
    from flowrun.store.runs import RunStore

    start = datetime.now(timezone.utc) - timedelta(days=60)
    with RunStore(home / "runs.db") as store:
        run_rows, step_rows = [], []
        for i in range(runs):
            at = (start + timedelta(minutes=8 * i)).isoformat(timespec="milliseconds")
            rid = f"run-{i:06d}"
            run_rows.append(
                (rid, f"bench-{i % 25}", None, "h", WORKFLOW.format(n=i % 25), "{}",
                 "failed" if i % 17 == 0 else "succeeded", at, at, 0.0012, "{}", None, None, "{}", 0)
            )  # fmt: skip
            for sid in ("ask", "answer"):
                record = {"id": sid, "status": "succeeded", "output": "x" * 80, "calls": []}
                step_rows.append(
                    (rid, sid, "succeeded", 0.0006, json.dumps(record), at, TRANSCRIPT)
                )
        bid = "batch-bench"
        at = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        summary = {
            "records": records,
            "succeeded": records - 7,
            "failed": 7,
            "cost": {"total_usd": 1.5},
        }
        step = {
            "ask": {
                "status": "succeeded",
                "output": "y" * 80,
                "cost_usd": 1e-5,
                "transcript": json.loads(TRANSCRIPT),
            }
        }
        record_rows = [
            (
                bid,
                i,
                "failed" if i % 14_000 == 5 else "succeeded",
                1.5e-5,
                0.4,
                i + 1,
                None,
                json.dumps(step),
            )
            for i in range(records)
        ]
        store.write_many(
            [
                ("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", run_rows),
                ("INSERT INTO steps (run_id, step_id, status, cost_usd, record, finished_at, transcript)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?)", step_rows),
                ("INSERT INTO batches (id, workflow_name, workflow_path, workflow_hash, workflow_text,"
                 " records_path, output_path, options, status, started_at, ended_at, summary, pid)"
                 " VALUES (?, 'bench-batch', NULL, 'h', ?, NULL, NULL, '{}', 'succeeded', ?, ?, ?, 0)",
                 [(bid, WORKFLOW.format(n="batch"), at, at, json.dumps(summary))]),
                ("INSERT INTO batch_records (batch_id, record_index, status, cost_usd, duration_s,"
                 " line, error, steps) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", record_rows),
            ]
        )  # fmt: skip
    return bid


def whole_process(command: list[str], env: dict[str, str], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        best = min(best, time.perf_counter() - started)
    return best


def page_time(url: str, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as res:
            res.read()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(os.environ.get("BENCH_HOME") or tmp)
        os.environ["FLOWRUN_HOME"] = str(home)
        started = time.perf_counter()
        bid = fill(home, args.runs, args.records)
        size = sum(p.stat().st_size for p in home.glob("runs.db*"))
        print(
            f"store: {args.runs:,} runs + a batch of {args.records:,} records "
            f"({size / 1e6:.0f} MB, filled in {time.perf_counter() - started:.1f} s)"
        )
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        flowrun = [sys.executable, "-m", "flowrun"]
        floor = [
            sys.executable,
            "-c",
            "import sqlite3,sys; db=sqlite3.connect(sys.argv[1]); "
            "print(db.execute('SELECT id, workflow_name, status, started_at, cost_usd FROM runs "
            "ORDER BY started_at DESC LIMIT 20').fetchall())",
            str(home / "runs.db"),
        ]
        base = whole_process(floor, env, args.repeat)
        print(f"  hand-written sqlite3 script (20 newest)   {base:6.3f} s")
        for name, extra in (
            ("flowrun runs list", ["runs", "list"]),
            ("flowrun runs list --status failed", ["runs", "list", "--status", "failed"]),
            ("flowrun runs list --workflow bench-3", ["runs", "list", "--workflow", "bench-3"]),
            ("flowrun runs show BATCH", ["runs", "show", bid]),
            ("flowrun runs show BATCH --record 99999", ["runs", "show", bid, "--record", str(args.records - 1)]),
        ):  # fmt: skip
            wall = whole_process(flowrun + extra, env, args.repeat)
            goal = "met" if wall < GOAL_LIST_S else "MISSED"
            print(
                f"  {name:<42} {wall:6.3f} s  {wall / base:4.1f}x the script  (goal < {GOAL_LIST_S} s: {goal})"
            )

        from flowrun.store.runs import RunStore
        from flowrun.view.server import ViewServer

        server = ViewServer(RunStore(), port=0)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            page_time(server.url, 1)  # warm up imports
            for name, path in (
                ("viewer: runs list (first page)", ""),
                ("viewer: a run with its DAG", "run/run-000042?step=answer"),
                (f"viewer: batch of {args.records:,} records", f"batch/{bid}"),
                ("viewer: batch, a later page of records", f"batch/{bid}?from=90000"),
                ("viewer: batch, one record's steps", f"batch/{bid}?record=77777&step=ask"),
            ):
                wall = page_time(server.url + path, args.repeat)
                goal = "met" if wall < GOAL_PAGE_S else "MISSED"
                print(
                    f"  {name:<42} {wall * 1000:6.1f} ms  (goal < {GOAL_PAGE_S * 1000:.0f} ms: {goal})"
                )
        finally:
            server.shutdown()
            server.server_close()
            server.store.close()


if __name__ == "__main__":
    main()
