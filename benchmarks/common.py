"""What the benchmarks share: their workflows, and the loopback server in its own process.

``DIAMOND``: ``b`` and ``c`` side by side, then ``d`` joins them (depth 2, three calls per
record); the hand-written scripts in ``batch.py`` and ``side_by_side.py`` send the same
prompts. ``DIAMOND_TEXT``: the same shape over an input named ``text``, for the Batch API
benchmarks.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

DIAMOND = """\
version: 1
name: diamond
inputs:
  q: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 64
steps:
  b:
    type: chat
    prompt: "Say B about: {{ inputs.q }}"
  c:
    type: chat
    prompt: "Say C about: {{ inputs.q }}"
  d:
    type: chat
    prompt: "Join: {{ steps.b.output }} / {{ steps.c.output }}"
outputs:
  answer: "{{ steps.d.output }}"
"""

DIAMOND_TEXT = """\
version: 1
name: diamond
inputs:
  text: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 64
steps:
  a:
    type: chat
    prompt: "Summarize: {{ inputs.text }}"
  b:
    type: chat
    prompt: "Keywords of: {{ inputs.text }}"
  join:
    type: chat
    prompt: "Join: {{ steps.a.output }} / {{ steps.b.output }}"
outputs:
  answer: "{{ steps.join.output }}"
"""

SERVER = """\
import sys
from flowrun.testing import LoopbackServer
server = LoopbackServer(latency=float(sys.argv[1])).start()
print(server.url, flush=True)
sys.stdin.read()
"""


def start_server(latency: float) -> tuple[subprocess.Popen[str], str]:
    """The loopback server (each reply after ``latency`` seconds) in its own process, so it
    does not share the measured process's GIL; closing its stdin stops it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline().strip()
