"""Where a workflow's editor modeline points: the committed ``schemas/workflow.schema.json``.

``flowrun init`` and ``flowrun convert`` start the files they write with
``# yaml-language-server: $schema=PATH``, PATH relative to the file (as README's example:
``../schemas/workflow.schema.json``), so the link works in any checkout. They look for
``schemas/workflow.schema.json`` in the file's folder and its parents; ``init`` writes one
(``flowrun schema``'s output) beside the new file when there is none; ``convert`` then leaves
the modeline out rather than point at nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SCHEMA_PATH = Path("schemas") / "workflow.schema.json"


def find_schema_file(folder: Path) -> Path | None:
    """``schemas/workflow.schema.json`` in ``folder`` or the nearest parent that has one."""
    folder = folder.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / SCHEMA_PATH).is_file():
            return candidate / SCHEMA_PATH
    return None


def write_schema_file(folder: Path) -> Path:
    """Write the workflow file format's JSON schema to ``folder/schemas/workflow.schema.json``."""
    from flowrun.format.spec import workflow_json_schema

    path = folder / SCHEMA_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(workflow_json_schema(), indent=2, ensure_ascii=False) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def modeline(workflow_file: Path, schema_file: Path) -> str:
    """The editor modeline of ``workflow_file``, pointing at ``schema_file`` relatively."""
    relative = os.path.relpath(schema_file.resolve(), workflow_file.resolve().parent)
    return f"# yaml-language-server: $schema={Path(relative).as_posix()}"
