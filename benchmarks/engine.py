"""The executor's scheduling and per-step overhead, against the loopback server. Prints ratios.

Run it from the repository root:

    python benchmarks/engine.py [--repeat 5] [--wide 200] [--chain 100]

(a) Fan-in: four independent steps, then one step that reads all four; every reply takes
    0.5 s. The critical path is two replies (1.0 s). Printed: wall time, start-up (run start
    to the first request reaching the server) and (wall - start-up) / critical path.
    Goal: <= 1.1.
(b) Engine overhead per step: the same requests sent by flowrun and by a hand-written asyncio
    script using the same AsyncOpenAI SDK against the same server (0 latency), as a wide
    workflow (N independent steps) and as a chain (each step reads the previous output).
    Printed: wall and CPU time per step, flowrun / hand-written as min (median) of the
    repeats, runs interleaved. Goal: <= 1.15. On a busy machine the medians are noisy.
(c) flowrun's own cost per step with the model client answering from memory (no HTTP):
    scheduling, templates, messages, pricing, results, and the run store's writes.

The server runs in its own process so that it does not compete with the client for the GIL.
Nothing is asserted: it prints.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

MODEL = "gpt-4o-mini"
MAX_TOKENS = 50
SERVER = """
import sys, time
from flowrun.testing import LoopbackServer
server = LoopbackServer(latency=float(sys.argv[1])).start()
print(server.url, flush=True)
sys.stdin.read()  # until the parent closes the pipe
"""


class Server:
    """A LoopbackServer in a child process; ``url`` points at it."""

    def __init__(self, latency: float) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SERVER, str(latency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.url = self.proc.stdout.readline().strip()  # type: ignore[union-attr]

    def __enter__(self) -> Server:
        os.environ["OPENAI_BASE_URL"] = self.url
        os.environ["OPENAI_API_KEY"] = "sk-bench-loopback"
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.stdin.close()  # type: ignore[union-attr]
        self.proc.wait(timeout=10)


def write(folder: Path, name: str, steps: list[str]) -> Path:
    text = [
        "version: 1",
        f"name: {name}",
        f"defaults: {{model: {MODEL}, max_completion_tokens: {MAX_TOKENS}, max_retries: 0}}",
        "steps:",
        *steps,
    ]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(text) + "\n", encoding="utf-8")
    return path


def fan_in(folder: Path) -> Path:
    steps = [f'  s{i}: {{type: chat, prompt: "part {i}"}}' for i in range(4)]
    joined = " ".join(f"{{{{ steps.s{i}.output }}}}" for i in range(4))
    steps.append(f'  join: {{type: chat, prompt: "join {joined}"}}')
    return write(folder, "fan_in", steps)


def wide(folder: Path, n: int) -> Path:
    return write(folder, "wide", [f'  s{i}: {{type: chat, prompt: "item {i}"}}' for i in range(n)])


def chain(folder: Path, n: int) -> Path:
    steps = ['  s0: {type: chat, prompt: "item 0"}']
    steps += [
        f'  s{i}: {{type: chat, prompt: "item {i} after {{{{ steps.s{i - 1}.output }}}}"}}'
        for i in range(1, n)
    ]
    return write(folder, "chain", steps)


# --- flowrun --------------------------------------------------------------------------


def time_flowrun(path: Path, store: bool) -> tuple[float, float, float]:
    """Wall time of one run, its start-up (until the first call is handed to the client), CPU."""
    from flowrun import load_workflow
    from flowrun.api import arun_workflow
    from flowrun.provider.client import OpenAIClient

    wf = load_workflow(path)
    first: list[float] = []
    client = OpenAIClient()
    original = client.chat

    async def chat(*args, **kwargs):  # note when the first call leaves
        if not first:
            first.append(time.perf_counter())
        return await original(*args, **kwargs)

    client.chat = chat  # type: ignore[method-assign]

    async def main() -> float:
        started = time.perf_counter()
        result = await arun_workflow(wf, {}, store=store, client=client)
        assert result.status == "succeeded", result.error
        return started

    t0, c0 = time.perf_counter(), time.process_time()
    started = asyncio.run(main())
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, first[0] - started, cpu


def fan_in_timing(path: Path, repeat: int) -> tuple[float, float, float]:
    """Median wall time, start-up and join gap of the fan-in, from the server's timestamps.

    The server runs in this process here, so its clock is ours; it mostly sleeps.
    """
    from flowrun import load_workflow
    from flowrun.api import arun_workflow
    from flowrun.testing import LoopbackServer

    wf = load_workflow(path)
    walls, startups, gaps = [], [], []
    with LoopbackServer(latency=0.5) as server:
        os.environ.update(server.env())
        for i in range(repeat + 1):
            server.reset()
            t0 = time.monotonic()
            result = asyncio.run(arun_workflow(wf, {}))
            wall = time.monotonic() - t0
            assert result.status == "succeeded", result.error
            if i == 0:
                continue  # warm-up
            *parts, join = sorted(server.requests, key=lambda r: r.received_at)
            walls.append(wall)
            startups.append(parts[0].received_at - t0)
            gaps.append(join.received_at - max(r.replied_at or 0 for r in parts))
    return median(walls), median(startups), median(gaps)


def engine_only(path: Path, repeat: int, store: bool) -> float:
    """Best seconds per step of a run whose model calls return at once from memory."""
    from flowrun import load_workflow
    from flowrun.api import arun_workflow
    from flowrun.provider.client import ChatReply, OpenAIClient
    from flowrun.results import Usage

    class InMemory(OpenAIClient):
        async def chat(self, request, **options):  # type: ignore[override]
            return ChatReply("ok", finish_reason="stop", usage=Usage(5, 1), model=request["model"])

    wf = load_workflow(path)
    best = float("inf")
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        result = asyncio.run(arun_workflow(wf, {}, store=store, client=InMemory()))
        best = min(best, time.perf_counter() - t0)
        assert result.status == "succeeded", result.error
    return best / len(wf.spec.steps)


# --- the hand-written baseline ----------------------------------------------------------


def time_baseline(n: int, *, sequential: bool) -> tuple[float, float]:
    """The same requests with AsyncOpenAI and asyncio only."""
    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI()

        async def call(prompt: str) -> str:
            reply = await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": prompt}],
                max_completion_tokens=MAX_TOKENS,
            )
            return reply.choices[0].message.content or ""

        if sequential:
            previous = await call("item 0")
            for i in range(1, n):
                previous = await call(f"item {i} after {previous}")
        else:
            await asyncio.gather(*(call(f"item {i}") for i in range(n)))
        await client.close()

    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(main())
    return time.perf_counter() - t0, time.process_time() - c0


def median(values: list[float]) -> float:
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--wide", type=int, default=200)
    parser.add_argument("--chain", type=int, default=100)
    args = parser.parse_args()
    os.environ["FLOWRUN_HOME"] = tempfile.mkdtemp(prefix="flowrun-bench-")
    folder = Path(tempfile.mkdtemp(prefix="flowrun-bench-wf-"))
    import openai  # noqa: F401  (import costs are start-up, not engine overhead)

    print("(a) 4-wide fan-in, 0.5 s per reply, critical path 1.0 s")
    wall, startup, gap = fan_in_timing(fan_in(folder), args.repeat)
    print(f"    wall {wall:.3f} s, start-up {startup * 1000:.1f} ms (run start to first request)")
    print(f"    the join step's request left {gap * 1000:.1f} ms after its last dependency's reply")
    print(f"    (wall - start-up) / critical path = {(wall - startup) / 1.0:.3f}   (goal <= 1.1)")

    print(
        f"(b) engine overhead, 0 latency; wall and client CPU time, min (median) of {args.repeat}"
    )
    with Server(latency=0.0):
        cases = [
            ("wide", args.wide, wide(folder, args.wide), False),
            ("chain", args.chain, chain(folder, args.chain), True),
        ]
        for name, n, path, sequential in cases:
            time_baseline(n, sequential=sequential)  # warm-up
            time_flowrun(path, store=False)
            runs: dict[str, list[tuple[float, float]]] = {"hand": [], "flowrun": [], "store": []}
            for i in range(args.repeat):
                order = ["hand", "flowrun", "store"]
                for kind in order[i % 3 :] + order[: i % 3]:  # rotate, so drift hits all alike
                    if kind == "hand":
                        runs[kind].append(time_baseline(n, sequential=sequential))
                    else:
                        wall, _, cpu = time_flowrun(path, store=kind == "store")
                        runs[kind].append((wall, cpu))
            print(f"    {name} ({n} steps{', each reading the previous' if sequential else ''}):")
            hand = runs["hand"]
            for kind, label in (
                ("hand", "hand-written"),
                ("flowrun", "flowrun"),
                ("store", "flowrun + run store"),
            ):
                line = f"      {label:20}"
                for j, what in ((0, "wall"), (1, "cpu")):
                    mine = [r[j] for r in runs[kind]]
                    base = [r[j] for r in hand]
                    line += f"  {what} {min(mine) / n * 1000:5.2f} ms/step"
                    if kind != "hand":
                        line += (
                            f" = {min(mine) / min(base):.3f}x ({median(mine) / median(base):.3f}x)"
                        )
                print(line)
        print("    goal: flowrun / hand-written <= 1.15")

    print("(c) flowrun's own time per step: the model client answers from memory, no HTTP")
    for name, path in (("wide", wide(folder, args.wide)), ("chain", chain(folder, args.chain))):
        bare, stored = engine_only(path, args.repeat, False), engine_only(path, args.repeat, True)
        print(
            f"    {name:5} {bare * 1e6:4.0f} us/step, with the run store {stored * 1e6:4.0f} us/step"
        )


if __name__ == "__main__":
    main()
