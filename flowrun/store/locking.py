"""Exclusive locks between processes: overlapping runs of one workflow file (cron safety), and
two batches writing one output file.

Each lock is an ``flock`` on a file under ``FLOWRUN_HOME/locks`` (named by a hash of what it
guards), held while the body runs and released by the OS if the process dies (even by
``kill -9``), so a stale lock never blocks anyone. The holder writes who it is (pid and start
time) into the file, so the refused process can name it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from flowrun.errors import AlreadyRunning as AlreadyRunning
from flowrun.errors import UsageError


def lock_key(wf: Any) -> str:
    """What a lock is per: the workflow file's absolute path (its content hash if it has none).

    ``wf`` is a loaded workflow or a path (``flowrun resume`` knows only the run's path).
    """
    if isinstance(wf, (str, Path)):
        return str(Path(wf).resolve())
    return str(wf.path.resolve()) if wf.path else wf.content_hash


@contextlib.contextmanager
def exclusive(key: str, refused: Any) -> Iterator[Callable[[str], None]]:
    """Hold the lock named ``key`` while the body runs; if another process holds it, raise
    ``refused(holder)`` (``holder``: "pid N, started at T" as that process wrote it, or
    "NAME (pid N, started at T)" once it named itself with the function the body gets)."""
    import fcntl

    from flowrun.store.runs import flowrun_home

    folder = flowrun_home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".lock")
    handle = open(path, "a+")  # noqa: SIM115 - held for the body's duration
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            raise refused(handle.read().strip() or "another process") from None
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        who = f"pid {os.getpid()}, started at {started}"

        def name(text: str | None) -> None:
            handle.seek(0)
            handle.truncate()
            handle.write(f"{text} ({who})" if text else who)
            handle.flush()

        name(None)
        yield name
    finally:
        handle.close()


@contextlib.contextmanager
def workflow_lock(wf: Any, *, enabled: bool = True) -> Iterator[None]:
    """Hold an exclusive, non-blocking lock per workflow path while the body runs."""
    if not enabled:
        yield
        return
    key = lock_key(wf)

    def refused(holder: str) -> AlreadyRunning:
        return AlreadyRunning(
            f"another run of {key} is still in progress ({holder}); not starting a second one"
        )

    with exclusive(key, refused):
        yield


@contextlib.contextmanager
def output_lock(output: Path | None) -> Iterator[Callable[[str], None]]:
    """Hold the output file of a batch (and so its batch run) for this process: a second
    batch given the same output, or a second resume of the batch, is refused (exit 2).

    The body gets a function to name the holder once the batch id is known (``batch ID``)."""
    if output is None:  # stdout: nothing another process could write over
        yield lambda _text: None
        return
    target = str(output.resolve())

    def refused(holder: str) -> UsageError:
        if holder.startswith("pid "):
            holder = f"another flowrun batch ({holder})"
        return UsageError(f"{holder} is still writing {target}; not starting a second one")

    with exclusive("output:" + target, refused) as name:
        yield name
