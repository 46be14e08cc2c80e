"""Resolving ``module:callable`` references, from the Python path or next to the workflow file."""

from __future__ import annotations

import importlib
import sys
import threading
from pathlib import Path
from typing import Any

_lock = threading.Lock()


class ImportProblem(Exception):
    """A ``module:attr`` reference that cannot be resolved; the message says why."""


def import_object(spec: str, base_dir: Path | None = None) -> Any:
    """Import ``module:attr`` (dotted attrs allowed), trying ``base_dir`` first on sys.path."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ImportProblem(f"'{spec}' is not of the form module:callable")
    with _lock:
        added = False
        if base_dir is not None:
            entry = str(Path(base_dir).resolve())
            if entry not in sys.path:
                sys.path.insert(0, entry)
                added = True
        try:
            module = _import_module(module_name)
        except ModuleNotFoundError as exc:
            raise ImportProblem(f"cannot import '{spec}': {exc}") from None
        except Exception as exc:  # a syntax error or a raising module body
            raise ImportProblem(f"cannot import '{spec}': {type(exc).__name__}: {exc}") from None
        finally:
            if added:
                sys.path.remove(entry)
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportProblem(
                f"cannot import '{spec}': module '{module_name}' has no attribute '{part}'"
            ) from None
    return obj


def _import_module(name: str) -> Any:
    """Import a module; files written for promptflow get a stand-in ``@tool`` when it is absent."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != "promptflow":
            raise
        from .convert.pf_shim import install_promptflow_stub

        install_promptflow_stub()
        return importlib.import_module(name)


def import_callable(spec: str, base_dir: Path | None = None) -> Any:
    """Like ``import_object`` but the result must be callable."""
    obj = import_object(spec, base_dir)
    if not callable(obj):
        raise ImportProblem(f"'{spec}' is not callable")
    return obj
