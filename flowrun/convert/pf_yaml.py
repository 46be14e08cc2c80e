"""Writing the converted workflow as YAML a person reads: one block per section and per step,
multi-line prompts as literal blocks."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Literal

import yaml

from flowrun.convert.pf_flow import PfFlow
from flowrun.errors import UsageError

HEADER = "# Converted from promptflow by `flowrun convert promptflow`"
_CHECKSUM = "# checksum sha256:"
_CHECKSUM_NOTE = " (an edited file is not overwritten without --force)"
FileState = Literal["absent", "converted", "edited", "foreign"]


def output_state(path: Path) -> FileState:
    """Whether ``path`` is absent, as this command wrote it, written by it then edited, or
    someone else's file. The second line holds a checksum of the rest of the file."""
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        return "absent"
    except (OSError, UnicodeDecodeError):
        return "foreign"
    first, _, rest = text.partition("\n")
    if not first.startswith(HEADER):
        return "foreign"
    second, _, body = rest.partition("\n")
    if not second.startswith(_CHECKSUM):
        return "edited"
    stored = second[len(_CHECKSUM) :].split(" ", 1)[0]
    return "converted" if stored == _digest(first + "\n" + body) else "edited"


def written_by_converter(path: Path) -> bool:
    """Whether ``path`` is a file this command wrote and nobody edited (so it may be overwritten)."""
    return output_state(path) == "converted"


def refuse_link(path: Path) -> None:
    """Raise ``UsageError`` when ``path`` is a symbolic link: writing through it would replace
    the file it points to (another flow's, say), even with --force."""
    if path.is_symlink():
        raise UsageError(
            f"{path} is a symbolic link (to {os.readlink(path)}); flowrun convert does not "
            "write through links",
            hint="remove the link, or pass -o to write elsewhere",
        )


def check_overwrite(path: Path) -> None:
    """Raise ``UsageError`` unless ``path`` is absent or an unedited file this command wrote
    (and is not a symbolic link)."""
    refuse_link(path)
    state = output_state(path)
    if state == "foreign":
        raise UsageError(
            f"{path} exists and was not written by flowrun convert",
            hint="pass --force to overwrite it, or -o to write elsewhere",
        )
    if state == "edited":
        raise UsageError(
            f"{path} was changed after flowrun convert wrote it (its checksum does not match)",
            hint="pass --force to overwrite the changes, or -o to write elsewhere",
        )


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _with_checksum(text: str) -> str:
    first, _, body = text.partition("\n")
    digest = _digest(first + "\n" + body)
    return f"{first}\n{_CHECKSUM}{digest}{_CHECKSUM_NOTE}\n{body}"


# --- YAML --------------------------------------------------------------------------------
class _Dumper(yaml.SafeDumper):
    pass


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data.strip() and not data[:1].isspace() else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _represent_str)


def _yaml(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000, indent=2
    )


def dump_workflow(workflow: dict[str, Any], flow: PfFlow, out_path: Path) -> str:
    """The workflow as YAML: a header, then the document, dumped once (a prompt ending with a
    blank line is a ``|+`` block, which a document of its own would close with ``...``), with a
    blank line between sections and between steps wherever that leaves every value as it is."""
    from flowrun.format.schema_file import find_schema_file, modeline

    schema_file = find_schema_file(out_path.parent)  # none found: no modeline, not a dead link
    lines = [
        f"{HEADER} from {flow.dir.absolute().name}/{flow.dag.name}",
        *([modeline(out_path, schema_file)] if schema_file else []),
        "# The flow's own files are not modified: its prompts are copied below, its Python",
        "# files are imported from next to this file.",
    ]
    body = _yaml(workflow)
    if body.endswith("\n...\n"):
        body = body[: -len("...\n")]
    spaced = _spaced(body, workflow)
    return _with_checksum("\n".join(lines) + "\n" + spaced)


def _spaced(body: str, workflow: dict[str, Any]) -> str:
    """``body`` with a blank line before each top-level key after the head and before each step
    but the first; unchanged when a blank line would change a value (after a ``|+`` block)."""
    out: list[str] = []
    section = ""
    first_step = True
    for line in body.splitlines(True):
        if line[:1] not in ("", " ", "\n", "#"):
            section = line.split(":", 1)[0]
            if section in ("inputs", "steps", "outputs", "tools", "defaults", "budget"):
                out.append("\n")
        elif section == "steps" and line.startswith("  ") and line[2:3] not in (" ", "\n", ""):
            if not first_step:
                out.append("\n")
            first_step = False
        out.append(line)
    spaced = "".join(out)
    try:
        same = yaml.safe_load(spaced) == workflow
    except yaml.YAMLError:
        same = False
    return spaced if same else body
