"""Writing the converted workflow as YAML a person reads: one block per section and per step,
multi-line prompts as literal blocks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .pf_flow import PfFlow

HEADER = "# Converted from promptflow by `flowrun convert promptflow`"


def written_by_converter(path: Path) -> bool:
    """Whether ``path`` is a file this command wrote (so it may be overwritten)."""
    try:
        with path.open(encoding="utf-8") as f:
            return f.readline().startswith(HEADER)
    except (OSError, UnicodeDecodeError):
        return False


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


def dump_workflow(workflow: dict[str, Any], flow: PfFlow) -> str:
    """The workflow as YAML: a header, then one block per section and per step."""
    lines = [
        f"{HEADER} from {flow.dir.name}/{flow.dag.name}",
        "# yaml-language-server: $schema=https://flowrun.dev/schemas/workflow.schema.json",
        "# The flow's own files are not modified: its prompts are copied below, its Python",
        "# files are imported from next to this file.",
    ]
    head = {k: workflow[k] for k in ("version", "name", "description") if k in workflow}
    blocks = ["\n".join(lines) + "\n" + _yaml(head)]
    if "inputs" in workflow:
        blocks.append(_yaml({"inputs": workflow["inputs"]}))
    steps = workflow.get("steps") or {}
    step_blocks = [_indent(_yaml({sid: step})) for sid, step in steps.items()]
    blocks.append("steps:\n" + "\n".join(step_blocks))
    if "outputs" in workflow:
        blocks.append(_yaml({"outputs": workflow["outputs"]}))
    return "\n".join(blocks)


def _indent(text: str) -> str:
    return "".join("  " + line if line.strip() else line for line in text.splitlines(True))
