"""The SDK client from the environment, made in a background thread while a run is set up.

``flowrun run`` of one workflow starts it as soon as the workflow is loaded; the first
``OpenAIClient()`` (no key, URL or server of its own) that needs its SDK client takes it,
if the environment is still the one it was made from. Making it mostly loads the CA
certificates, which OpenSSL does without the GIL: meanwhile the main thread imports the
engine and sets the run up. Nothing changes for a run that does not take it (``--mock``,
named servers, a changed environment): the next client is made as before.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import Any

_pending: list[tuple[threading.Thread, dict[str, str], dict[str, Any]]] = []


def start(make: Callable[[str], Any]) -> None:
    """Make ``make(OPENAI_API_KEY)`` in a background thread (nothing without a key: the
    client made where it is needed reports that). What ``make`` needs must be imported
    already, by the caller (``client.sdk_maker``): two threads importing at once could wait
    on each other's module locks."""
    _pending.clear()  # one not taken before (a run that failed before its first call)
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        return
    made: dict[str, Any] = {}

    def run() -> None:
        with contextlib.suppress(Exception):  # made again where needed, which reports it
            made["sdk"] = make(key)

    # not a daemon: a run that stops early (a bad price file: exit 2) must not leave the
    # interpreter finalizing while this thread is inside OpenSSL, which crashes the process
    thread = threading.Thread(target=run, name="flowrun-sdk-client", daemon=False)
    _pending.append((thread, dict(os.environ), made))
    thread.start()


def take(key: str, base_url: str | None) -> Any:
    """The client made by ``start``, if it is the one ``key`` and ``base_url`` (None: the
    environment's) would give now; else None. A client is taken once."""
    if not _pending:
        return None
    thread, environ, made = _pending.pop()
    if base_url is not None or environ != dict(os.environ) or environ.get("OPENAI_API_KEY") != key:
        return None
    thread.join()
    return made.get("sdk")
