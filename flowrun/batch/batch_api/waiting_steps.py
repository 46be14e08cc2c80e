"""The completed steps of records suspended until a batch answers.

A record that waits for a batch leaves memory, and runs again with the steps it completed
when its answer is collected. Those steps are not durable state: every model step's answer
is stored in the Batch API state already (``flowrun.store.batch_api_state``), so a record
whose completed steps are lost (a crash) runs them again from those answers, asking and
paying for nothing twice. Steps that could repeat something if run again (a tool step, a chat
step with tools or a thread) are stored in the batch store as they complete as well (the
runner's ``lasting`` steps).

So the steps wait here, pickled: in memory up to ``IN_MEMORY_BYTES``, then in a temporary
file, instead of being written to, read back from and deleted from the run store (a quarter
of a large Batch API run's local time). A record's steps that cannot be pickled (a tool
returned an object pickle refuses) wait as they are. When a run stops with records still
waiting, the runner stores their steps (``drain``) so a resume gives them back.
"""

from __future__ import annotations

from collections.abc import Iterator

from flowrun.batch.batch_api.held_results import OnDisk, SpillFile, pickled, unpickled
from flowrun.results import StepResult

#: bytes of pickled steps kept in memory before the rest go to the temporary file
IN_MEMORY_BYTES = 16 * 1024 * 1024

Steps = dict[str, StepResult]
_Kept = bytes | OnDisk | Steps


class WaitingSteps:
    """Suspended records' completed steps: record index -> steps, pickled while they wait."""

    def __init__(self) -> None:
        self._kept: dict[int, _Kept] = {}
        self._in_memory = 0  # bytes of the pickles kept in memory
        self._spill = SpillFile("flowrun-steps-")

    def keep(self, index: int, steps: Steps) -> None:
        """Keep record ``index``'s completed steps until it runs again (replacing any kept)."""
        self._drop(index)
        if not steps:
            return
        data = pickled(steps)
        if not isinstance(data, bytes):  # (pickle refused it)
            self._kept[index] = data
        elif self._in_memory + len(data) <= IN_MEMORY_BYTES:
            self._in_memory += len(data)
            self._kept[index] = data
        else:
            self._kept[index] = self._spill.put(data)

    def take(self, index: int) -> Steps:
        """Record ``index``'s kept steps (none: ``{}``); they are no longer kept here."""
        kept = self._kept.pop(index, None)
        if kept is None:
            return {}
        if isinstance(kept, OnDisk):
            kept = self._spill.get(kept)
        elif isinstance(kept, bytes):
            self._in_memory -= len(kept)
        return unpickled(kept)

    def drain(self) -> Iterator[tuple[int, Steps]]:
        """Every record's kept steps, lowest index first, taken out."""
        for index in sorted(self._kept):
            yield index, self.take(index)

    def _drop(self, index: int) -> None:
        if index in self._kept:
            self.take(index)

    def close(self) -> None:
        self._kept.clear()
        self._in_memory = 0
        self._spill.close()


__all__ = ["IN_MEMORY_BYTES", "WaitingSteps"]
