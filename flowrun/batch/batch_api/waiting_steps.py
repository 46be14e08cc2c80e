"""The completed steps of records suspended until a batch answers.

A record that waits for a batch leaves memory, and runs again with the steps it completed
when its answer is collected. Those steps are not durable state: every model step's answer
is stored in the Batch API state already (``flowrun.store.batch_api_state``), so a record
whose completed steps are lost (a crash) runs them again from those answers, asking and
paying for nothing twice. Steps that could repeat something if run again (a tool step, a chat
step with tools or a thread) are stored in the batch store as they complete as well (the
runner's ``lasting`` steps).

So the steps wait here, as bytes: in memory up to ``IN_MEMORY_BYTES``, then in a temporary
file, instead of being written to, read back from and deleted from the run store (a quarter
of a large Batch API run's local time). The bytes are ``marshal``'s of each step's field
values in order (``packed``): pickle names, looks up and imports each class of each step
(a step, its calls, their usage) and took half again the instructions. Steps marshal cannot
take (an output that is not plain data: a tool's object) are pickled, and those pickle
refuses too wait as they are. When a run stops with records still waiting, the runner
stores their steps (``drain``) so a resume gives them back.
"""

from __future__ import annotations

import marshal
from collections.abc import Iterator
from dataclasses import fields
from typing import Any

from flowrun.batch.batch_api.held_results import OnDisk, SpillFile, pickled, unpickled
from flowrun.results import CallRecord, StepResult, Usage

#: bytes of pickled steps kept in memory before the rest go to the temporary file
IN_MEMORY_BYTES = 16 * 1024 * 1024

Steps = dict[str, StepResult]
_Kept = bytes | OnDisk | Steps
_CALLS = [f.name for f in fields(StepResult)].index("calls")  # (positions of the fields)
_USAGE = [f.name for f in fields(CallRecord)].index("usage")
_PICKLE = 0x80  # the first byte of a pickle (PROTO); never marshal's first


def packed(steps: Steps) -> bytes | Steps:
    """The steps as bytes: marshal's of each step's field values in order (a call's, its
    usage's), by the classes' pickling (``flowrun.results``); pickled when a value is not
    plain data (marshal takes builtins only, and exactly: a subclass is refused too) or a
    step is not exactly a ``StepResult`` (its calls ``CallRecord``, their usage ``Usage``)."""
    try:
        plain: list[tuple[str, list[Any]]] = []
        for sid, step in steps.items():
            if type(step) is not StepResult:
                raise TypeError(sid)
            values = list(step.__reduce__()[1])
            calls = []
            for call in values[_CALLS]:
                if type(call) is not CallRecord or type(call.usage) is not Usage:
                    raise TypeError(sid)
                cv = list(call.__reduce__()[1])
                cv[_USAGE] = cv[_USAGE].__reduce__()[1]
                calls.append(cv)
            values[_CALLS] = calls
            plain.append((sid, values))
        return marshal.dumps(plain)
    except (ValueError, TypeError, AttributeError):  # not plain data: pickle it
        return pickled(steps)


def unpacked(kept: bytes | Steps) -> Steps:
    if not isinstance(kept, bytes) or kept[0] == _PICKLE:
        return unpickled(kept)  # type: ignore[no-any-return]
    steps: Steps = {}
    for sid, values in marshal.loads(kept):
        calls = []
        for cv in values[_CALLS]:
            cv[_USAGE] = Usage(*cv[_USAGE])
            calls.append(CallRecord(*cv))
        values[_CALLS] = calls
        steps[sid] = StepResult(*values)
    return steps


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
        data = packed(steps)
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
        return unpacked(kept)

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
