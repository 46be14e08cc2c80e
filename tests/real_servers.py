"""Real third-party OpenAI-compatible servers for the tests: LiteLLM proxy and llama.cpp's.

Each is found in a virtualenv of its own (``.real-servers/<name>`` beside the repository's
``.venv``, made by ``.ci/install-real-servers``; or ``FLOWRUN_LITELLM`` / ``FLOWRUN_LLAMA_PYTHON``
naming the executable), started on a free loopback port, and killed at the end (llama.cpp's
server ignores SIGTERM while it generates). Where a server is not installed or does not start,
its tests skip and say why; the loopback tests stay the default.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
REAL = REPO / ".real-servers"
SHARED = REPO.parent / "shared" / "real-servers"
INSTALL = "bash .ci/install-real-servers"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def executable(env: str, default: Path) -> Path | None:
    """The executable named by ``env``, else ``default`` when it exists."""
    given = os.environ.get(env)
    path = Path(given) if given else default
    return path if path.is_file() else None


def litellm_or_skip() -> Path:
    exe = executable("FLOWRUN_LITELLM", REAL / "litellm" / "bin" / "litellm")
    if exe is None:
        pytest.skip(
            f"LiteLLM proxy is not installed ({INSTALL}, or set FLOWRUN_LITELLM to its litellm)"
        )
    return exe


def llama_or_skip() -> Path:
    python = executable("FLOWRUN_LLAMA_PYTHON", REAL / "llama" / "bin" / "python")
    if python is None:
        pytest.skip(
            "llama-cpp-python's server is not installed: its wheel comes only from "
            f"../shared/real-servers ({INSTALL} where it is present, or set FLOWRUN_LLAMA_PYTHON)"
        )
    if not (SHARED / "make_tiny_gguf.py").is_file():
        pytest.skip(f"{SHARED} (the tiny model's scripts and vocabulary) is not present")
    return python


@contextmanager
def running(
    args: list[str], url: str, *, name: str, log: Path, env: dict[str, str], wait_s: float
) -> Iterator[None]:
    """Run a server until the block ends; skip (with its last log lines) if it never answers
    ``url`` within ``wait_s`` seconds."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + wait_s
        while not _answers(url):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace").strip().splitlines()[-3:]
                why = "exited" if proc.poll() is not None else f"did not answer in {wait_s:g} s"
                pytest.skip(f"{name} could not start ({why}): {' | '.join(tail)}")
            time.sleep(0.5)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except Exception:
        return False
