"""A ``foreach`` over N items whose model calls each take 0.2 s, at several concurrency bounds.

Run it from the repository root:

    python benchmarks/foreach.py [--items 50] [--latency 0.2] [--bounds 8,50] [--runs 3]

Each call is answered by the loopback server after ``--latency`` seconds, so the step should
take about ceil(items / bound) x latency. For every bound it prints the best of ``--runs``
measurements, that expectation, their ratio (1.00 = no overhead) and the most requests the
server saw at once (which must equal min(bound, items)). Beside it, a hand-written asyncio +
AsyncOpenAI script sends the same requests at the same bound against the same server (a new
client per run, as flowrun makes), so what is flowrun's and what is the SDK's and the
in-process server's is visible. Nothing is asserted: it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flowrun import load_workflow  # noqa: E402
from flowrun.api import arun_workflow  # noqa: E402
from flowrun.testing import LoopbackServer, RecordedRequest, Reply  # noqa: E402

WORKFLOW = """\
version: 1
name: foreach-bench
inputs:
  texts: {{type: array}}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 20
steps:
  each:
    type: chat
    foreach: "{{{{ inputs.texts }}}}"
    max_concurrency: {bound}
    prompt: "Item {{{{ index }}}}: {{{{ item }}}}"
"""


class Overlap:
    """A responder that counts how many requests are being answered at the same time."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.now = 0
        self.max = 0

    def __call__(self, req: RecordedRequest) -> Reply:
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)
        time.sleep(self.latency)
        with self.lock:
            self.now -= 1
        return Reply(content="ok")


def measure(
    folder: Path, server: LoopbackServer, items: int, bound: int, latency: float
) -> tuple[float, int]:
    path = folder / f"foreach-{bound}.yaml"
    path.write_text(WORKFLOW.format(bound=bound), encoding="utf-8")
    wf = load_workflow(path)
    responder = Overlap(latency)
    server.reset()
    server.add(responder, times=None)
    texts = [f"text {i}" for i in range(items)]

    async def run() -> float:
        started = time.perf_counter()
        result = await arun_workflow(wf, {"texts": texts}, store=False)
        elapsed = time.perf_counter() - started
        if result.status != "succeeded":
            raise SystemExit(f"run failed: {result.error}")
        return elapsed

    return asyncio.run(run()), responder.max


def measure_sdk(server: LoopbackServer, items: int, bound: int, latency: float) -> float:
    """The same requests from a hand-written script: AsyncOpenAI and a semaphore."""
    from openai import AsyncOpenAI

    server.reset()
    server.add(Overlap(latency), times=None)

    async def run() -> float:
        started = time.perf_counter()
        client = AsyncOpenAI()
        gate = asyncio.Semaphore(bound)

        async def one(index: int) -> str | None:
            async with gate:
                reply = await client.chat.completions.create(
                    model="gpt-4o-mini",
                    messages=[{"role": "user", "content": f"Item {index}: text {index}"}],
                    max_completion_tokens=20,
                )
                return reply.choices[0].message.content

        await asyncio.gather(*(one(i) for i in range(items)))
        await client.close()
        return time.perf_counter() - started

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--bounds", default="8,50")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    import os

    print(f"foreach over {args.items} items, {args.latency:g} s per call, best of {args.runs}")
    print(
        f"{'bound':>5}  {'measured':>9}  {'expected':>9}  {'ratio':>6}  {'max in flight':>13}"
        f"  {'hand-written':>12}  {'flowrun/hand':>12}"
    )
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer() as server:
        os.environ.update(server.env())
        os.environ["FLOWRUN_HOME"] = tmp
        measure(Path(tmp), server, 4, 4, 0.0)  # warm-up: imports, SDK client, tiktoken
        for bound in (int(b) for b in args.bounds.split(",")):
            runs = [
                measure(Path(tmp), server, args.items, bound, args.latency)
                for _ in range(args.runs)
            ]
            best, overlap = min(runs)
            hand = min(
                measure_sdk(server, args.items, bound, args.latency) for _ in range(args.runs)
            )
            expected = math.ceil(args.items / bound) * args.latency
            print(
                f"{bound:>5}  {best:>8.3f}s  {expected:>8.3f}s  {best / expected:>6.2f}  {overlap:>13}"
                f"  {hand:>11.3f}s  {best / hand:>12.2f}"
            )


if __name__ == "__main__":
    main()
