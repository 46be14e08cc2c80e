"""``flowrun view``: a local, read-only web viewer over the run store.

``server`` is a standard-library HTTP server bound to 127.0.0.1 that answers GET only; the
pages (``pages``: the runs list, a run with its DAG, a batch with its records) are HTML
rendered on the server, with their CSS inline and no JavaScript library, no CDN, no build
step. ``dag`` draws a run's step graph as SVG from the stored workflow text (parsed, never
executed: no tool module is imported). Every page passes ``redact``: the API key is never served.

May import: ``store``, ``format``, ``errors``, ``results``, ``redaction``; never ``engine``,
``api``, ``batch`` or ``cli``.
"""
