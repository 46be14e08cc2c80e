"""The garbage collector during a batch: fewer, cheaper passes.

A batch allocates millions of short-lived objects (requests, replies, step results) while
tens of thousands of records may be in flight. With CPython's default settings the cyclic
collector runs a young pass every 700 allocations and full passes over a heap that grows
with the records in flight: a measurable share of a Batch API run's local CPU time. For the
batch, what existed before it (modules, the loaded workflow) is frozen out of the passes
(``gc.freeze``) and the young generation is collected every ``YOUNG`` allocations
(``BATCH_API_YOUNG`` for a Batch API run, whose chunks of records come and go together); both are
put back afterwards, so a Python program that runs a batch keeps its own settings.

Reference counting still frees almost everything at once; the collector only finds cycles,
and flowrun's record paths avoid making them (see ``Executor._run``).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

YOUNG = 50_000  # allocations between young-generation passes (CPython's default: 700)
#: for a Batch API run: the records of a chunk run together (2,000 of them) hold a few
#: hundred thousand young objects that die together when the chunk ends; with 50,000 every
#: young pass walked most of them (16% of the run's CPU time at 20,000 records of the
#: diamond), with 500,000 a pass comes only when that many objects outlive their chunk
BATCH_API_YOUNG = 500_000

_lock = threading.Lock()
_active = 0  # batches running in this process (each in its own thread, or nested)
_before: tuple[int, int, int] = (700, 10, 10)


@contextlib.contextmanager
def batch_collector(young: int = YOUNG) -> Iterator[None]:
    """Fewer collector passes while a batch runs (a young pass every ``young`` allocations);
    the first batch to start sets them, the last to end puts the program's own settings back."""
    global _active, _before
    with _lock:
        if _active == 0:
            _before = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(young, _before[1], _before[2])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_before)
                gc.unfreeze()
