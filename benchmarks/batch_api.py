"""Batch API runs: flowrun's local overhead per record between waves.

Run it from the repository root:

    python benchmarks/batch_api.py [--records 300 5000] [--repeat 3] [--server-process]

A diamond workflow (``a`` and ``b`` side by side, then ``join``) runs over N records with
``run_batch(..., via="batch-api")`` against the loopback Batch API (completion delay 0,
polling without pause), so the run is two waves of one chat batch each. The time spent
waiting on the API (uploads, creates, polls, downloads: everything the server does) is
subtracted from the wall time; what is left is flowrun's local work: executing the records
between waves (templates, requests, tool steps, outputs), building and splitting the JSONL
files, storing ids and results in the run store, parsing the output and handing it back.
Printed per record (best of ``--repeat``; goal < 1 ms), with the share of the coordinator
itself, the memory per record in flight, and the batches the server received.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

from common import DIAMOND_TEXT as DIAMOND  # benchmarks/common.py

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOAL_MS = 1.0


async def one_run(wf: object, records: int, measure_memory: bool = False) -> dict[str, float]:
    from flowrun.batch import BatchSummary, make_batch_services
    from flowrun.batch.batch_api.coordinator import WaveSettings
    from flowrun.batch.modes import BATCH_API
    from flowrun.batch.records import ColumnMapping, records_from

    rows = [
        {"text": f"ticket {i}: the printer on floor {i % 7} is out of toner"}
        for i in range(records)
    ]
    services = make_batch_services(wf, mode=BATCH_API)  # type: ignore[arg-type]
    services.client.sdk()  # the SDK client exists before timing (a one-off, live runs pay it too)
    runner = BATCH_API.runner(
        wf,
        records_from(rows),
        ColumnMapping(wf.spec, None, None),  # type: ignore[attr-defined]
        services,
        summary=BatchSummary(),
        settings=WaveSettings(poll_initial=0.0, poll_max=0.0),
    )
    if measure_memory:  # the server runs in its own process: this is flowrun's memory alone
        tracemalloc.start()
    started = time.perf_counter()
    done = 0
    async for result in runner.results():
        assert result.ok, result.error
        done += 1
    wall = time.perf_counter() - started
    peak = 0
    if measure_memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    await services.client.aclose()
    assert done == records
    coordinator = runner.coordinator
    api = coordinator.transport.seconds
    return {
        "wall": wall,
        "api": api,
        "local_ms": (wall - api) * 1000 / records,
        "coordinator_ms": coordinator.local_seconds * 1000 / records,
        "peak_kb": peak / 1024 / records,
    }


SERVER = """
import sys, time, json
sys.path.insert(0, sys.argv[1])
from flowrun.testing import LoopbackServer
with LoopbackServer() as server:
    print(server.url, flush=True)
    for line in sys.stdin:  # "log": the batches so far
        log = [(b.endpoint, len(b.custom_ids)) for b in server.batch_api.batches]
        print(json.dumps(log), flush=True)
"""


@contextlib.contextmanager
def loopback_process() -> Iterator[tuple[str, Callable[[], list]]]:
    """The loopback server in its own process (so its work is not flowrun's CPU or memory)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(REPO)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    url = proc.stdout.readline().strip()

    def log() -> list:
        proc.stdin.write("log\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return json.loads(proc.stdout.readline())  # type: ignore[union-attr]

    try:
        yield url, log
    finally:
        proc.stdin.close()
        proc.wait(timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, nargs="+", default=[300, 5000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    os.environ["FLOWRUN_HOME"] = tempfile.mkdtemp(prefix="flowrun-bench-")
    from flowrun.format.loader import load_workflow

    folder = Path(tempfile.mkdtemp())
    (folder / "diamond.yaml").write_text(DIAMOND, encoding="utf-8")
    wf = load_workflow(folder / "diamond.yaml")

    with loopback_process() as (url, log):
        os.environ.update({"OPENAI_BASE_URL": url, "OPENAI_API_KEY": "sk-bench"})
        asyncio.run(one_run(wf, 20))  # warm up: imports, the store's tables
        print(f"Batch API local overhead, diamond workflow (goal < {GOAL_MS:g} ms per record)")
        results = {}
        for n in args.records:
            runs = [asyncio.run(one_run(wf, n)) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["local_ms"])
            memory = asyncio.run(one_run(wf, n, measure_memory=True))
            verdict = "ok" if best["local_ms"] < GOAL_MS else "OVER GOAL"
            print(
                f"  {n:>6,} records: {best['local_ms']:.3f} ms/record local "
                f"(coordinator {best['coordinator_ms']:.3f}) · wall {best['wall']:.2f} s, "
                f"API {best['api']:.2f} s · peak {memory['peak_kb']:.1f} KB/record · {verdict}"
            )
            results[n] = round(best["local_ms"], 4)
        print(f"  batches per run (endpoint, requests): {log()[-2:]}")
        print(json.dumps({"goal_ms": GOAL_MS, "local_ms_per_record": results}))


if __name__ == "__main__":
    main()
