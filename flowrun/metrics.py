"""Metrics of a run: what an aggregate step's function gives to ``log_metric``.

```python
from flowrun import log_metric          # or promptflow's: from promptflow.core import log_metric

def accuracy(grades: list[str]) -> float:
    value = grades.count("Correct") / len(grades)
    log_metric("accuracy", round(value, 2))
    return value
```

The engine collects the calls made while an aggregate step runs (``collecting``); they become
the run's (or the batch's) ``metrics``. A call anywhere else does nothing, as promptflow
ignores ``log_metric`` outside an aggregation node. The last value given for a name wins.

May import: nothing in flowrun.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import math
from collections.abc import Iterator
from typing import Any

__all__ = ["collecting", "log_metric"]

_METRICS: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "flowrun_metrics", default=None
)


def log_metric(key: str, value: Any, variant_id: str | None = None) -> None:
    """Record a metric of the run (``variant_id`` is promptflow's, and ignored). Numbers,
    text and other JSON values are kept; anything else as its text (NaN too)."""
    metrics = _METRICS.get()
    if metrics is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        value = str(value)
    metrics[str(key)] = value


@contextlib.contextmanager
def collecting(into: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """While the block runs (and in the threads and tasks it starts), ``log_metric`` fills
    ``into``."""
    token = _METRICS.set(into)
    try:
        yield into
    finally:
        _METRICS.reset(token)
