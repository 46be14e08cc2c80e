"""Cron safety: stop two overlapping runs of the same workflow file."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowrun.errors import AlreadyRunning as AlreadyRunning


def lock_key(wf: Any) -> str:
    """What a lock is per: the workflow file's absolute path (its content hash if it has none).

    ``wf`` is a loaded workflow or a path (``flowrun resume`` knows only the run's path).
    """
    if isinstance(wf, (str, Path)):
        return str(Path(wf).resolve())
    return str(wf.path.resolve()) if wf.path else wf.content_hash


@contextlib.contextmanager
def workflow_lock(wf: Any, *, enabled: bool = True) -> Iterator[None]:
    """Hold an exclusive, non-blocking file lock per workflow path while the body runs.

    The lock lives under ``FLOWRUN_HOME/locks`` and is released by the OS if the process dies.
    """
    if not enabled:
        yield
        return
    import fcntl

    from flowrun.store.runs import flowrun_home

    key = lock_key(wf)
    folder = flowrun_home() / "locks"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (hashlib.sha256(key.encode()).hexdigest()[:16] + ".lock")
    handle = open(path, "a+")  # noqa: SIM115 - held for the body's duration
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise AlreadyRunning(
                f"another run of {key} is still in progress ({holder}); not starting a second one"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        yield
    finally:
        handle.close()
