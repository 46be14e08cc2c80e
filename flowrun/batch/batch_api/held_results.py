"""Finished records whose output line must wait for an earlier record's.

Lines are written in input order. In a Batch API run one record can fall a whole turnaround
behind the rest (a failed request is asked again in the next round), and every record after
it finishes meanwhile: kept as objects, their steps and transcripts would take gigabytes at
100,000 records. Past ``IN_MEMORY`` waiting results, each one is pickled to a temporary file
instead and read back when its turn comes (the same object: the CLI writes its line and
history, the Python API yields it). A result that cannot be pickled (a tool returned an
object pickle refuses) stays in memory.
"""

from __future__ import annotations

import pickle
import tempfile
from typing import IO

from flowrun.batch.summary import BatchResult

#: waiting results kept as objects before they go to the temporary file
IN_MEMORY = 2_000


class OnDisk:
    """Where a waiting result's pickle is in the temporary file."""

    __slots__ = ("offset", "size")

    def __init__(self, offset: int, size: int) -> None:
        self.offset, self.size = offset, size


class HeldResults:
    """The temporary file of waiting results (made when the first one goes there)."""

    def __init__(self) -> None:
        self._file: IO[bytes] | None = None
        self._end = 0
        self.on_disk = 0  # results in the file now

    def keep(self, result: BatchResult, waiting: int) -> BatchResult | OnDisk:
        """``result`` as it waits, ``waiting`` results waiting already."""
        if waiting < IN_MEMORY:
            return result
        try:
            data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # noqa: BLE001 - e.g. an output holding a lock or a generator
            return result
        if self._file is None:
            # (open as long as the run: closed by ``close``)
            self._file = tempfile.TemporaryFile(prefix="flowrun-waiting-")  # noqa: SIM115
        self._file.seek(self._end)
        self._file.write(data)
        where = OnDisk(self._end, len(data))
        self._end += len(data)
        self.on_disk += 1
        return where

    def take(self, kept: BatchResult | OnDisk) -> BatchResult:
        """The result, read back if it waited on disk."""
        if isinstance(kept, BatchResult):
            return kept
        assert self._file is not None
        self._file.seek(kept.offset)
        data = self._file.read(kept.size)
        self.on_disk -= 1
        if not self.on_disk:  # every one is back: start the file again
            self._file.truncate(0)
            self._end = 0
        return pickle.loads(data)  # noqa: S301 - our own bytes, written by this process

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


__all__ = ["IN_MEMORY", "HeldResults", "OnDisk"]
