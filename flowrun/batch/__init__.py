"""Live batches: one workflow run per record of a JSONL/CSV file, concurrently and resumably.

``run`` is the Python API (``run_batch``, ``arun_batch``); ``records`` reads the records file,
``runner`` keeps records in flight and yields results in input order, ``job`` ties a records
file to an output file and the run store, ``output_file`` writes and merges that file,
``summary`` counts what happened and ``progress`` shows it. ``batch_api/`` runs the same
records through the OpenAI Files and Batches APIs.

May import: ``api``, ``engine``, ``format``, ``provider``, ``store``, ``errors``, ``results``,
``redaction``, ``json_text``; never ``cli``. The names below are loaded on first use so that importing a submodule stays light.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "CURRENT_RECORD",
    "DEFAULT_CONCURRENCY",
    "BatchResult",
    "BatchRunner",
    "BatchSummary",
    "arun_batch",
    "make_batch_services",
    "run_batch",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module 'flowrun.batch' has no attribute {name!r}")
    value = getattr(import_module("flowrun.batch.run"), name)
    globals()[name] = value
    return value
