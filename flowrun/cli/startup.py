"""A ``flowrun run`` or ``validate`` process's start-up: imports without collector passes,
the SDK client made ahead, then the collector back on.

Start-up (the openai SDK, pydantic, the workflow's models) makes hundreds of thousands of
objects and frees almost none; CPython's cyclic collector still walks them again and again
as they accumulate, and once more over all of them when the process exits. ``begin`` (the
console script, for ``flowrun run`` and ``validate``) turns the collector off; ``end`` (once
the workflow is loaded and the engine imported; ``validate``: once its first file is read)
freezes what start-up made out of every later pass (``gc.freeze``) and turns the collector
on again, so the run and its tools have it as usual.
A program that calls ``flowrun.cli.main(argv)`` itself keeps its collector untouched.
"""

from __future__ import annotations

import gc
from typing import Any

_turned_off = False  # whether begin() turned the collector off (and end() must turn it on)


def begin() -> None:
    """The collector off for the start-up of this process's command."""
    global _turned_off
    if gc.isenabled():
        gc.disable()
        _turned_off = True


def end(wf: Any, *, default_client: bool) -> None:
    """The end of a run's start-up: its SDK client started (``default_client``: a single live
    run), the engine imported, and the collector on again over a frozen start-up."""
    if default_client:
        from flowrun.engine.servers import prepare_default_client

        prepare_default_client(wf)  # made while the rest is set up
    import flowrun.api  # noqa: F401  (the run's own imports, still without collector passes)

    collector_on()


def collector_on() -> None:
    """The collector on again if ``begin`` turned it off, over a frozen start-up."""
    global _turned_off
    if _turned_off:
        _turned_off = False
        gc.freeze()
        gc.enable()
