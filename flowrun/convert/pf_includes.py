"""Where a node's source file is: in the flow folder, or in one of its ``additional_includes``.

promptflow copies each file or folder listed in ``additional_includes`` (paths relative to the
flow folder, e.g. ``../web-classification/classify_with_llm.jinja2``) into the flow's working
directory before it runs, under its own name; a node's ``source.path`` then names the copy.
The converter copies nothing: it reads a prompt from where the include is, and a tool step
names an included Python file by its path (``../web-classification/convert_to_dict.py:f``).

Paths are made absolute once, without resolving symbolic links: a flow whose files are links
into another folder (promptflow's ``flow-with-symlinks``) is still the flow folder.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def absolute(path: Path) -> Path:
    """``path`` made absolute and normalised (``..`` removed) without following links."""
    return Path(os.path.abspath(path))


def includes(data: dict[str, Any]) -> list[str]:
    value = data.get("additional_includes") or []
    return [str(v) for v in value] if isinstance(value, list) else []


def find_source(flow_dir: Path, data: dict[str, Any], path: str) -> Path | None:
    """The file a node's ``source.path`` names (absolute, links not followed), or None."""
    direct = absolute(flow_dir / path)
    if direct.is_file():
        return direct
    first, _, rest = Path(path).as_posix().partition("/")
    for include in includes(data):
        target = absolute(flow_dir / include)
        if target.name != first:
            continue
        candidate = target / rest if rest else target
        if candidate.is_file():
            return candidate
    return None


def missing_includes(flow_dir: Path, data: dict[str, Any]) -> list[str]:
    """The listed includes that do not exist."""
    return [i for i in includes(data) if not absolute(flow_dir / i).exists()]
