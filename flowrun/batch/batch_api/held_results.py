"""What a Batch API run holds while records wait, pickled, on a temporary file past a limit.

``HeldResults``: finished records whose output line must wait for an earlier record's. Lines
are written in input order. In a Batch API run one record can fall a whole turnaround behind
the rest (a failed request is asked again in the next round), and every record after it
finishes meanwhile: kept as objects, their steps and transcripts would take gigabytes at
100,000 records. Past ``IN_MEMORY`` waiting results, each one is pickled to a temporary file
instead and read back when its turn comes (the same object: the CLI writes its line and
history, the Python API yields it). A result that cannot be pickled (a tool returned an
object pickle refuses) stays in memory.

``SpillFile``: the temporary file both this and ``WaitingSteps`` (the completed steps of
suspended records, as marshal's bytes) put their bytes in. ``pickled``/``unpickled``: what
waits, pickled when pickle takes it (results, a suspended record's inputs, steps that are
not plain data).
"""

from __future__ import annotations

import pickle
import tempfile
from typing import IO, TypeVar

from flowrun.batch.summary import BatchResult

T = TypeVar("T")

#: waiting results kept as objects before they go to the temporary file
IN_MEMORY = 2_000
BUFFER = 1024 * 1024  # bytes of the temporary file's buffer


def pickled(value: T) -> bytes | T:
    """What waits, pickled: a third to a half of the objects' size; as it is if pickle
    refuses it (e.g. a tool's output holding a lock)."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - anything pickle refuses waits as it is
        return value


def unpickled(kept: bytes | T) -> T:
    if isinstance(kept, bytes):
        return pickle.loads(kept)  # type: ignore[no-any-return]  # noqa: S301 - our own bytes
    return kept


class OnDisk:
    """Where a pickle is in the temporary file."""

    __slots__ = ("offset", "size")

    def __init__(self, offset: int, size: int) -> None:
        self.offset, self.size = offset, size


class SpillFile:
    """A temporary file of pickles, made when the first one goes there and written from its
    start again once every one is taken back (open until ``close``)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._file: IO[bytes] | None = None
        self._end = 0
        self._at = 0  # the file's position (a seek flushes the buffer: only when it moves)
        self.count = 0  # pickles in the file now

    def put(self, data: bytes) -> OnDisk:
        if self._file is None:  # (a large buffer: pickles are written and read in runs)
            self._file = tempfile.TemporaryFile(prefix=self.prefix, buffering=BUFFER)  # noqa: SIM115
        self._move(self._end)
        self._file.write(data)
        where = OnDisk(self._end, len(data))
        self._end += len(data)
        self._at = self._end
        self.count += 1
        return where

    def get(self, where: OnDisk) -> bytes:
        assert self._file is not None
        self._move(where.offset)
        data = self._file.read(where.size)
        self._at = where.offset + len(data)
        self.count -= 1
        if not self.count:  # every one is back: start the file again
            self._file.truncate(0)
            self._end = self._at = 0
            self._file.seek(0)
        return data

    def _move(self, offset: int) -> None:
        if self._at != offset:
            assert self._file is not None
            self._file.seek(offset)
            self._at = offset

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class HeldResults:
    """Finished results waiting for their turn (past ``IN_MEMORY``, in a ``SpillFile``)."""

    def __init__(self) -> None:
        self._spill = SpillFile("flowrun-waiting-")

    def keep(self, result: BatchResult, waiting: int) -> BatchResult | OnDisk:
        """``result`` as it waits, ``waiting`` results waiting already."""
        if waiting < IN_MEMORY:
            return result
        data = pickled(result)
        return self._spill.put(data) if isinstance(data, bytes) else result

    def take(self, kept: BatchResult | OnDisk) -> BatchResult:
        """The result, read back if it waited on disk."""
        if isinstance(kept, BatchResult):
            return kept
        return unpickled(self._spill.get(kept))  # type: ignore[no-any-return]

    def close(self) -> None:
        self._spill.close()


__all__ = ["IN_MEMORY", "HeldResults", "OnDisk", "SpillFile", "pickled", "unpickled"]
