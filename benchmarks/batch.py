"""Batch throughput and memory: flowrun against a hand-written asyncio + AsyncOpenAI script.

Run it from the repository root:

    python benchmarks/batch.py [--records 200] [--latency 0.05] [--concurrency 32]
                               [--repeat 3] [--big 100000] [--skip-big]

Part 1: ``--records`` records through a three-call diamond workflow (``b`` and ``c`` side by
side, then ``d`` joins them) against the loopback server (in its own process, ``--latency``
seconds per request). It times ``flowrun run --batch`` (in-process: the batch itself, not
interpreter start-up) and a hand-written script that makes the same requests with
``AsyncOpenAI`` at the same concurrency, best of ``--repeat``, and prints both and the ratio;
and flowrun again with ``--no-transcripts``, for what storing transcripts costs (goal < 5 %).
Goals: flowrun <= 1.5 s at the default concurrency and <= 1.15 x the script.

Part 2: ``--big`` records through a tool-only workflow with ``flowrun run --batch`` in a
fresh process; prints its wall time and its own peak RSS (``os.wait4`` on that child; goal
< 150 MB) and checks that the output has one line per record.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import DIAMOND, start_server  # benchmarks/common.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

GOAL_WALL_S = 1.5
GOAL_RATIO = 1.15
GOAL_RSS_MB = 150
GOAL_TRANSCRIPTS = 0.05  # storing transcripts adds under 5 % to the batch's wall time


TOOL_ONLY = """\
version: 1
name: tool-only
inputs:
  text: {type: string}
steps:
  shout:
    type: tool
    function: bench_tools:shout
    args: {text: "{{ inputs.text }}"}
outputs:
  loud: "{{ steps.shout.output }}"
"""

TOOLS_MODULE = '''\
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()
'''


async def handwritten(records: list[dict[str, str]], concurrency: int) -> None:
    """The same requests with the bare SDK: b and c concurrently, then d; ``concurrency`` records."""
    from openai import AsyncOpenAI

    client = AsyncOpenAI()
    limit = asyncio.Semaphore(concurrency)

    async def ask(prompt: str) -> str:
        reply = await client.chat.completions.create(
            model="gpt-4o-mini",
            max_completion_tokens=64,
            messages=[{"role": "user", "content": prompt}],
        )
        return reply.choices[0].message.content or ""

    async def one(record: dict[str, str]) -> str:
        async with limit:
            b, c = await asyncio.gather(
                ask(f"Say B about: {record['q']}"), ask(f"Say C about: {record['q']}")
            )
            return await ask(f"Join: {b} / {c}")

    await asyncio.gather(*(one(r) for r in records))
    await client.close()


def timed(run: Any) -> tuple[float, float]:
    """Wall and CPU seconds of ``run()`` (the CPU time shows how loaded the machine is)."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def flowrun_batch(workflow: Path, data: Path, out: Path, concurrency: int, *extra: str) -> None:
    """``flowrun run WORKFLOW --batch DATA --output OUT [EXTRA]`` in this process."""
    from flowrun.cli import main

    out.unlink(missing_ok=True)
    try:
        main(
            [
                "run",
                str(workflow),
                "--batch",
                str(data),
                "--output",
                str(out),
                "--concurrency",
                str(concurrency),
                "--quiet",
                *extra,
            ]
        )
    except SystemExit as exc:
        if exc.code:
            raise RuntimeError(f"flowrun exited {exc.code}") from None


def part_one(args: argparse.Namespace, tmp: Path) -> None:
    workflow = tmp / "diamond.yaml"
    workflow.write_text(DIAMOND)
    records = [{"q": f"question number {i}"} for i in range(args.records)]
    data = tmp / "records.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in records))
    proc, url = start_server(args.latency)
    os.environ.update(OPENAI_BASE_URL=url, OPENAI_API_KEY="sk-bench", FLOWRUN_HOME=str(tmp))
    try:
        asyncio.run(handwritten(records[:10], args.concurrency))  # warm up imports
        flowrun_batch(workflow, data, tmp / "warm.jsonl", args.concurrency)
        ours, theirs, bare = [], [], []
        for _ in range(args.repeat):  # alternate, so all see the same machine load
            theirs.append(timed(lambda: asyncio.run(handwritten(records, args.concurrency))))
            ours.append(
                timed(lambda: flowrun_batch(workflow, data, tmp / "out.jsonl", args.concurrency))
            )
            bare.append(
                timed(
                    lambda: flowrun_batch(
                        workflow, data, tmp / "bare.jsonl", args.concurrency, "--no-transcripts"
                    )
                )
            )
    finally:
        proc.kill()
        proc.wait()
    lines = (tmp / "out.jsonl").read_text().splitlines()
    assert len(lines) == args.records and all('"succeeded"' in x for x in lines)
    best_ours, best_theirs = min(w for w, _ in ours), min(w for w, _ in theirs)
    print(
        f"diamond workflow: {args.records} records x 3 calls, {args.latency * 1000:.0f} ms latency, "
        f"concurrency {args.concurrency}, best of {args.repeat} (client CPU s in brackets)"
    )
    for name, runs, best in (
        ("flowrun run --batch  ", ours, best_ours),
        ("asyncio + AsyncOpenAI", theirs, best_theirs),
    ):
        shown = ", ".join(f"{w:.3f} [{c:.2f}]" for w, c in runs)
        print(f"  {name}  {best:6.3f} s   (runs: {shown})")
    best_bare = min(w for w, _ in bare)
    shown = ", ".join(f"{w:.3f} [{c:.2f}]" for w, c in bare)
    print(f"  flowrun --no-transcripts  {best_bare:6.3f} s   (runs: {shown})")
    overhead = best_ours / best_bare - 1
    print(
        f"  transcripts add {overhead * 100:+.1f}% wall (goal < {GOAL_TRANSCRIPTS:.0%}: "
        f"{'met' if overhead < GOAL_TRANSCRIPTS else 'MISSED'})"
    )
    ratio = best_ours / best_theirs
    cpu_ratio = sum(c for _, c in ours) / sum(c for _, c in theirs)
    print(
        f"  ratio {ratio:.3f}x wall, {cpu_ratio:.3f}x CPU  (goal <= {GOAL_RATIO}x: "
        f"{'met' if ratio <= GOAL_RATIO else 'MISSED'}); wall goal <= {GOAL_WALL_S} s: "
        f"{'met' if best_ours <= GOAL_WALL_S else 'MISSED'}"
    )


def part_two(args: argparse.Namespace, tmp: Path) -> None:
    (tmp / "bench_tools.py").write_text(TOOLS_MODULE)
    workflow = tmp / "tool-only.yaml"
    workflow.write_text(TOOL_ONLY)
    data = tmp / "big.jsonl"
    with data.open("w") as f:
        for i in range(args.big):
            f.write(json.dumps({"text": f"record {i} " + "lorem ipsum " * 8}) + "\n")
    out = tmp / "big-out.jsonl"
    env = {**os.environ, "PYTHONPATH": str(REPO), "FLOWRUN_HOME": str(tmp)}
    command = [sys.executable, "-m", "flowrun", "run", str(workflow), "--batch", str(data)]
    stdout, stderr = tmp / "big.stdout", tmp / "big.stderr"
    started = time.perf_counter()
    with stdout.open("w") as out_f, stderr.open("w") as err_f:
        proc = subprocess.Popen(
            command + ["--output", str(out), "--json"], env=env, stdout=out_f, stderr=err_f
        )
        # this child's own peak RSS (RUSAGE_CHILDREN would be the max over every reaped
        # child, the loopback server of part 1 included)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"flowrun exited {proc.returncode}: {stderr.read_text()[-2000:]}")
    peak_mb = usage.ru_maxrss / 1024  # KB on Linux
    with out.open("rb") as f:
        written = sum(1 for _ in f)
    if written != args.big:
        raise RuntimeError(f"{out} has {written:,} lines, expected {args.big:,}")
    summary = json.loads(stdout.read_text())
    print(f"tool-only workflow: {args.big:,} records")
    print(
        f"  wall {wall:.2f} s (whole process) · {summary['duration_s']:.2f} s batch · "
        f"{args.big / summary['duration_s']:,.0f} records/s"
    )
    print(
        f"  peak RSS {peak_mb:.0f} MB (goal < {GOAL_RSS_MB} MB: "
        f"{'met' if peak_mb < GOAL_RSS_MB else 'MISSED'}); {summary['succeeded']:,} succeeded"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--big", type=int, default=100_000)
    parser.add_argument("--skip-big", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        part_one(args, Path(tmp))
        if not args.skip_big:
            print()
            part_two(args, Path(tmp))


if __name__ == "__main__":
    main()
