"""Resolving ``module:callable`` references, from next to the workflow file or the Python path.

A module that sits next to the workflow file (``helpers.py`` or a ``helpers/`` package) is
loaded from that path under a name of its own (``flowrun_local_<hash>_helpers``), so two
workflows may each have a ``helpers.py``, and a ``email.py`` there is not hidden by the
standard library. While it loads, the workflow's folder is first on ``sys.path``, so its own
imports of sibling modules work; after, the folder stays on ``sys.path`` (last), so do imports
its functions make when called (promptflow runs a flow with its folder on the path). The module is registered in ``sys.modules`` under that
name, so its functions pickle by reference. Other modules are imported as usual.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

from flowrun.errors import ImportProblem as ImportProblem

_lock = threading.RLock()
LOCAL_PREFIX = "flowrun_local_"


def import_object(spec: str, base_dir: Path | None = None) -> Any:
    """Import ``module:attr`` (dotted attrs allowed), looking next to ``base_dir`` first."""
    module_name, sep, attr_path = spec.partition(":")
    if not sep or not module_name or not attr_path:
        raise ImportProblem(f"'{spec}' is not of the form module:callable")
    with _lock:
        try:
            module = _load(module_name, base_dir)
        except ModuleNotFoundError as exc:
            raise ImportProblem(f"cannot import '{spec}': {exc}", missing=exc.name) from None
        except SystemExit as exc:
            raise ImportProblem(
                f"cannot import '{spec}': the module called sys.exit({exc.code!r}) "
                "while it was being imported"
            ) from None
        except Exception as exc:  # a syntax error or a raising module body
            raise ImportProblem(f"cannot import '{spec}': {type(exc).__name__}: {exc}") from None
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportProblem(
                f"cannot import '{spec}': module '{module_name}' has no attribute '{part}'"
            ) from None
    return obj


def import_callable(spec: str, base_dir: Path | None = None) -> Any:
    """Like ``import_object`` but the result must be callable."""
    obj = import_object(spec, base_dir)
    if not callable(obj):
        raise ImportProblem(f"'{spec}' is not callable")
    return obj


def _load(module_name: str, base_dir: Path | None) -> ModuleType:
    """The module: from its file next to the workflow when there is one, else by name.

    A name ending in ``.py`` is a file path, relative to the workflow's folder
    (``../shared/clean.py:clean``); its own folder is on ``sys.path`` while it loads."""
    if module_name.endswith(".py"):
        return _load_file(Path(module_name), base_dir)
    folder = Path(base_dir).resolve() if base_dir is not None else None
    top, _, rest = module_name.partition(".")
    source = _local_source(folder, top, package_needed=bool(rest)) if folder else None
    entry = str(folder) if folder else None
    added = entry is not None and entry not in sys.path
    keep = False
    if added:
        sys.path.insert(0, entry)  # for the module's own imports of its siblings
    try:
        if source is None:
            return _with_promptflow_stub(lambda: importlib.import_module(module_name))
        name = _local_name(source, top)
        module = _with_promptflow_stub(lambda: _exec_local(name, source))
        keep = True  # its functions' imports at call time find the siblings too
        if not rest:
            return module
        try:
            return importlib.import_module(f"{name}.{rest}")
        except ModuleNotFoundError as exc:
            if not (exc.name or "").startswith(name):
                raise
            missing = top + (exc.name or "")[len(name) :]
            raise ModuleNotFoundError(f"No module named '{missing}'", name=missing) from None
    finally:
        if added:
            sys.path.remove(entry)
        if keep and entry is not None and entry not in sys.path:
            sys.path.append(entry)  # last, so the folder hides no installed module


def _load_file(path: Path, base_dir: Path | None) -> ModuleType:
    source = (Path(base_dir) / path if base_dir is not None else path).resolve()
    if not source.is_file():
        raise ModuleNotFoundError(f"No file {path}", name=str(path))
    entry = str(source.parent)
    added = entry not in sys.path
    if added:
        sys.path.insert(0, entry)
    try:
        name = _local_name(source, source.stem.replace("-", "_").replace(".", "_"))
        module = _with_promptflow_stub(lambda: _exec_local(name, source))
    finally:
        if added:
            sys.path.remove(entry)
    if entry not in sys.path:
        sys.path.append(entry)  # as above: for imports its functions make when called
    return module


def _local_source(folder: Path, top: str, *, package_needed: bool) -> Path | None:
    """``folder/top.py`` or ``folder/top/__init__.py`` if it exists (only a package if dotted)."""
    if not top.isidentifier():
        return None
    package = folder / top / "__init__.py"
    if package.is_file():
        return package
    module = folder / f"{top}.py"
    return module if not package_needed and module.is_file() else None


def _local_name(source: Path, top: str) -> str:
    digest = zlib.crc32(str(source).encode("utf-8", "surrogateescape"))
    return f"{LOCAL_PREFIX}{digest:08x}_{top}"


def _exec_local(name: str, source: Path) -> ModuleType:
    """Load ``source`` as module ``name`` (once; later calls return the loaded module)."""
    loaded = sys.modules.get(name)
    if loaded is not None and getattr(loaded, "__file__", None) == str(source):
        return loaded
    is_package = source.name == "__init__.py"
    spec = importlib.util.spec_from_file_location(
        name, source, submodule_search_locations=[str(source.parent)] if is_package else None
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _with_promptflow_stub(load: Any) -> ModuleType:
    """``load()``; files written for promptflow get a stand-in ``@tool`` when it is absent."""
    try:
        return load()
    except ModuleNotFoundError as exc:
        if exc.name != "promptflow":
            raise
        from flowrun.format.promptflow_stub import install_promptflow_stub

        install_promptflow_stub()
        return load()
