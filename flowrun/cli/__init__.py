"""The ``flowrun`` command line: click commands that parse arguments, call the Python API and
render the result as text (``text``) or JSON.

``app`` holds the group, the one error handler and ``main`` (the console script); each other
module holds one command family. Nothing imports ``cli``.

May import: ``flowrun``, ``api``, ``batch``, ``engine``, ``format``, ``provider``, ``store``,
``convert``, ``view``, ``errors``, ``results``, ``redaction``, ``testing.loopback``, ``testing.replies``
(``--mock --via batch-api`` answers from a loopback server: the Batch API has no in-process mock).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """The console script ``flowrun``."""
    if argv is None and sys.argv[1:2] in (["run"], ["validate"]):
        from flowrun.cli import startup

        startup.begin()  # the collector off until the run starts (cli.startup)
    from flowrun.cli.app import main as run_cli

    run_cli(argv)
