"""Cold `flowrun validate` on a generated 50-step workflow, against the bare import floor.

Run it from the repository root:

    python benchmarks/validate_speed.py [--runs 7] [--steps 50] [--keep DIR]

It writes a 50-step workflow (a mix of chat, extract, tool and embed steps that refer to
each other, an inline extract schema, a tool function next to the file), then times
`python -m flowrun validate FILE` in a fresh interpreter several times and prints the
median next to the median of `python -c "import yaml, jinja2, networkx"` and their ratio.
The goal is a median under 0.3 s on the project machine. Nothing is asserted: it prints.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GOAL_S = 0.3

TOOLS_MODULE = '''\
def word_count(text: str) -> int:
    """Count the words of a text."""
    return len(text.split())
'''


def make_workflow(n_steps: int) -> str:
    """YAML text of a workflow with ``n_steps`` steps; step i reads one or two earlier steps."""
    lines = [
        "# yaml-language-server: $schema=../schemas/workflow.schema.json",
        "version: 1",
        "name: bench",
        "inputs:",
        "  text: {type: string, description: The document}",
        "  words: {type: integer, default: 80}",
        "defaults:",
        "  model: gpt-4o-mini",
        "  temperature: 0.2",
        "  max_completion_tokens: 256",
        "steps:",
    ]
    kinds = ("chat", "extract", "tool", "embed")
    for i in range(n_steps):
        kind = kinds[i % len(kinds)]
        prev = f"s{i - 1}" if i else None
        older = f"s{i - 3}" if i >= 3 else None
        ref = f"{{{{ steps.{prev}.output | tojson }}}}" if prev else "{{ inputs.text }}"
        lines.append(f"  s{i}:")
        lines.append(f"    type: {kind}")
        if kind == "chat":
            lines += [
                "    system: You are terse.",
                "    prompt: |",
                f"      Step {i}. Use at most {{{{ inputs.words }}}} words.",
                f"      Context: {ref}",
            ]
            if older:
                lines.append(f"      Earlier: {{{{ steps.{older}.output }}}}")
        elif kind == "extract":
            lines += [
                f'    prompt: "Extract the topic and score from: {ref}"',
                "    schema:",
                "      type: object",
                "      properties:",
                f"        topic_{i}: {{type: string, minLength: 1}}",
                f"        score_{i}: {{type: number, minimum: 0, maximum: {i + 1}}}",
                "        tags: {type: array, items: {type: string}}",
                f"      required: [topic_{i}, score_{i}]",
                "      additionalProperties: false",
            ]
        elif kind == "tool":
            lines += [
                "    function: bench_tools:word_count",
                "    args:",
                f'      text: "{ref}"',
            ]
        else:
            lines += [f'    input: "{ref}"', "    dimensions: 256"]
            if older:
                lines.append(f"    needs: [{older}]")
    lines += ["outputs:", f'  last: "{{{{ steps.s{n_steps - 1}.output }}}}"']
    return "\n".join(lines) + "\n"


def time_command(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    """Wall-clock and CPU (user + system) seconds of one run of ``cmd``.

    The CPU time hardly changes when other processes share the machine; the wall time does.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--keep", type=Path, help="write the workflow here and keep it")
    args = parser.parse_args()

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONDONTWRITEBYTECODE": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        workflow = folder / "bench.yaml"
        workflow.write_text(make_workflow(args.steps), encoding="utf-8")
        (folder / "bench_tools.py").write_text(TOOLS_MODULE, encoding="utf-8")

        validate = [sys.executable, "-m", "flowrun", "validate", str(workflow)]
        floor = [sys.executable, "-c", "import yaml, jinja2, networkx"]
        # One warm-up each so both sides read .pyc files, not source; then alternate the
        # two so that a busy machine slows both alike.
        time_command(validate, env, REPO)
        time_command(floor, env, REPO)
        runs: dict[str, list[tuple[float, float]]] = {"validate": [], "floor": []}
        for _ in range(args.runs):
            runs["validate"].append(time_command(validate, env, REPO))
            runs["floor"].append(time_command(floor, env, REPO))

    def medians(name: str) -> tuple[float, float, float]:
        walls = [w for w, _ in runs[name]]
        return statistics.median(walls), min(walls), statistics.median(c for _, c in runs[name])

    v, v_min, v_cpu = medians("validate")
    f, f_min, f_cpu = medians("floor")
    print(f"workflow: {args.steps} steps (chat/extract/tool/embed), {args.runs} runs each")
    print(f"load average: {os.getloadavg()[0]:.2f} (wall times grow with it; CPU times hardly)")
    print("                                   wall median    wall min   CPU median")
    print(f"flowrun validate (cold process)    {v:8.3f} s  {v_min:8.3f} s  {v_cpu:8.3f} s")
    print(f"import yaml, jinja2, networkx      {f:8.3f} s  {f_min:8.3f} s  {f_cpu:8.3f} s")
    print(
        f"ratio validate / import floor      {v / f:8.2f}x  {v_min / f_min:8.2f}x  {v_cpu / f_cpu:8.2f}x"
    )
    verdict = "met" if v < GOAL_S else "NOT met"
    print(f"goal: validate under {GOAL_S:.1f} s (wall median) -> {verdict}")


if __name__ == "__main__":
    main()
