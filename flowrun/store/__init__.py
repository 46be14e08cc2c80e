"""Everything flowrun keeps in SQLite: the run store (``runs``: runs, steps, cache, threads),
its numbered migrations, batch rows (``batches``), Batch API state (``batch_api_state``) and
the ``--no-overlap`` lock (``locking``).

May import: ``errors``, ``results``, ``redaction``, ``json_text``; never ``format``, ``engine``, ``batch`` or ``cli``.
"""
