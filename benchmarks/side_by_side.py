"""Whole processes side by side: flowrun against the hand-written script, alternating, with
the ratio of their medians printed for each pair.

Run it from the repository root (run it once or twice, not in a loop: the machine is shared):

    python benchmarks/side_by_side.py [--pairs 5] [--only startup batch validate]

Against the loopback server in its own process:

- start-up: ``flowrun run`` of a one-step workflow vs a 3-line script that imports openai
  and makes the same call (goal: within 1.1x);
- live batch: ``flowrun run diamond --batch`` over 200 records (3 calls each, 50 ms
  latency, concurrency 32) vs a hand-written asyncio + AsyncOpenAI script (goal: 1.05x);
- validate cold: ``flowrun validate`` vs ``python -c "import yaml, jinja2, networkx"``.

Each pair runs flowrun and the script one after the other (the order alternating), as fresh
processes with their bytecode written (as an installed package has it), so both see the same load; the median of each side and their ratio are printed,
with the load average. The CPU time each process used (user + system, from ``getrusage``) is
printed beside the wall time: on a shared machine it varies less than the wall time does.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import DIAMOND, start_server  # benchmarks/common.py (this folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent
PY = sys.executable

ONE_STEP = """\
version: 1
name: one
inputs:
  q: {type: string}
steps:
  answer:
    type: chat
    model: gpt-4o-mini
    prompt: "{{ inputs.q }}"
outputs:
  answer: "{{ steps.answer.output }}"
"""

SCRIPT = """\
from openai import OpenAI
reply = OpenAI().chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hello there"}])
print(reply.choices[0].message.content)
"""


BATCH_SCRIPT = """\
import asyncio, json, sys
from openai import AsyncOpenAI

async def main():
    client = AsyncOpenAI()
    limit = asyncio.Semaphore(32)
    records = [json.loads(line) for line in open(sys.argv[1])]

    async def ask(prompt):
        reply = await client.chat.completions.create(
            model="gpt-4o-mini", max_completion_tokens=64,
            messages=[{"role": "user", "content": prompt}])
        return reply.choices[0].message.content or ""

    async def one(record):
        async with limit:
            b, c = await asyncio.gather(ask(f"Say B about: {record['q']}"), ask(f"Say C about: {record['q']}"))
            return {"answer": await ask(f"Join: {b} / {c}")}

    results = await asyncio.gather(*(one(r) for r in records))
    with open(sys.argv[2], "w") as out:
        for r in results:
            out.write(json.dumps(r) + "\\n")
    await client.close()

asyncio.run(main())
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def wall(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """The wall time and the CPU time of one whole process."""
    if "--output" in command:  # a fresh output each time (an existing one is not overwritten)
        Path(command[command.index("--output") + 1]).unlink(missing_ok=True)
    cpu = _children_cpu()
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, cwd=REPO)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{command} failed: {done.stderr.decode()[-1500:]}")
    return took, _children_cpu() - cpu


def pairs(name: str, ours: list[str], theirs: list[str], env: dict[str, str], n: int) -> dict:
    wall(ours, env), wall(theirs, env)  # warm the file cache, once each
    a: list[tuple[float, float]] = []
    b: list[tuple[float, float]] = []
    for i in range(n):
        if i % 2:
            b.append(wall(theirs, env))
            a.append(wall(ours, env))
        else:
            a.append(wall(ours, env))
            b.append(wall(theirs, env))
    ma, mb = statistics.median(w for w, _ in a), statistics.median(w for w, _ in b)
    ca, cb = statistics.median(c for _, c in a), statistics.median(c for _, c in b)
    ratios = sorted(x[0] / y[0] for x, y in zip(a, b, strict=True))
    print(
        f"  {name:<12} flowrun {ma:.3f} s · script {mb:.3f} s · ratio {ma / mb:.2f}x "
        f"(pairwise {ratios[0]:.2f}-{ratios[-1]:.2f}, {n} pairs); "
        f"CPU {ca:.3f} s vs {cb:.3f} s: {ca / cb:.2f}x",
        flush=True,
    )
    return {
        "flowrun_s": round(ma, 4),
        "script_s": round(mb, 4),
        "ratio": round(ma / mb, 3),
        "cpu_ratio": round(ca / cb, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--only", nargs="+", default=["startup", "batch", "validate"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="flowrun-bench-"))
    (tmp / "one.yaml").write_text(ONE_STEP, encoding="utf-8")
    (tmp / "diamond.yaml").write_text(DIAMOND, encoding="utf-8")
    (tmp / "script.py").write_text(SCRIPT, encoding="utf-8")
    (tmp / "batch.py").write_text(BATCH_SCRIPT, encoding="utf-8")
    with (tmp / "in.jsonl").open("w", encoding="utf-8") as f:
        for i in range(200):
            f.write(json.dumps({"q": f"question {i}"}) + "\n")
    # bytecode written (PYTHONDONTWRITEBYTECODE=0) and the warm-up run first, as
    # validate_speed.py does: an installed flowrun has its .pyc files, as the SDK the script
    # imports has; without them each flowrun process compiled its own source (~0.1 s here)
    base = {**os.environ, "OPENAI_API_KEY": "sk-bench", "FLOWRUN_HOME": str(tmp / "home")}
    base["PYTHONDONTWRITEBYTECODE"] = "0"
    flowrun = [PY, "-m", "flowrun"]
    print(f"side by side, whole processes (load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores)")  # fmt: skip
    results: dict[str, dict] = {}
    if "startup" in args.only:
        proc, url = start_server(0.0)
        env = {**base, "OPENAI_BASE_URL": url}
        ours = [*flowrun, "run", str(tmp / "one.yaml"), "-i", "q=hello there"]
        results["startup"] = pairs("start-up", ours, [PY, str(tmp / "script.py")], env, args.pairs)
        proc.kill()
    if "batch" in args.only:
        proc, url = start_server(0.05)
        env = {**base, "OPENAI_BASE_URL": url, "FLOWRUN_PROGRESS_EVERY": "3600"}
        ours = [*flowrun, "run", str(tmp / "diamond.yaml"), "--batch", str(tmp / "in.jsonl")]
        ours += ["--output", str(tmp / "out.jsonl"), "--concurrency", "32"]
        theirs = [PY, str(tmp / "batch.py"), str(tmp / "in.jsonl"), str(tmp / "out2.jsonl")]
        results["live_batch"] = pairs("live batch", ours, theirs, env, args.pairs)
        proc.kill()
    if "validate" in args.only:
        ours = [*flowrun, "validate", str(tmp / "diamond.yaml")]
        theirs = [PY, "-c", "import yaml, jinja2, networkx"]
        results["validate"] = pairs("validate", ours, theirs, base, args.pairs)
    results["load"] = {"loadavg": round(os.getloadavg()[0], 1)}  # type: ignore[dict-item]
    print(json.dumps(results))


if __name__ == "__main__":
    main()
