"""A run's step DAG as SVG: layers left to right, each step coloured by its status.

The graph comes from the workflow text the run store kept: each step's ``needs`` and the
steps its templates read (``steps.<id>``), found by parsing the templates, as the loader does.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from html import escape
from typing import Any
from urllib.parse import quote

import yaml

from flowrun.format.templating import TemplateError, references_in

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 220, 52, 70, 22, 12
COLOURS = {
    "succeeded": ("#dcf5e3", "#2f9e55"),
    "failed": ("#fde0df", "#d23c35"),
    "skipped": ("#eeeeee", "#9a9a9a"),
    "running": ("#fff1cc", "#d99a00"),
    "waiting": ("#f7f7f7", "#c4c4c4"),
    "not run": ("#f7f7f7", "#c4c4c4"),
}


@dataclass
class Node:
    id: str
    status: str
    label: str  # "1.2s · $0.000012"


def dependencies(workflow_text: str) -> dict[str, list[str]]:
    """``{step: [steps it depends on]}`` in file order (empty if the text cannot be read)."""
    try:
        data = yaml.safe_load(workflow_text)
    except yaml.YAMLError:
        return {}
    steps = data.get("steps") if isinstance(data, dict) else None
    if not isinstance(steps, dict):
        return {}
    names = [str(s) for s in steps]
    deps: dict[str, list[str]] = {}
    for name, spec in steps.items():
        found: set[str] = set()
        if isinstance(spec, dict):
            needs = spec.get("needs") or []
            found |= {str(n) for n in (needs if isinstance(needs, list) else [needs])}
            with contextlib.suppress(TemplateError):
                found |= set(references_in(spec).steps)
        deps[str(name)] = [n for n in names if n in found and n != str(name)]
    return deps


def layers(deps: dict[str, list[str]]) -> list[list[str]]:
    """Steps by depth (longest path from a step without dependencies); cycles are cut."""
    depth: dict[str, int] = {}

    def walk(step: str, seen: frozenset[str]) -> int:
        if step in depth:
            return depth[step]
        parents = [d for d in deps.get(step, []) if d in deps and d not in seen]
        value = 1 + max((walk(p, seen | {step}) for p in parents), default=-1)
        depth[step] = value
        return value

    for step in deps:
        walk(step, frozenset())
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for step in deps:
        out[depth[step]].append(step)
    return out


def render_svg(deps: dict[str, list[str]], nodes: dict[str, Node], link: str) -> str:
    """The DAG as inline SVG; each step links to ``link + quoted step id``."""
    columns = layers(deps)
    if not columns:
        return '<p class="muted">(no steps to draw)</p>'
    pos: dict[str, tuple[int, int]] = {}
    tallest = max(len(c) for c in columns)
    height = PAD * 2 + tallest * BOX_H + (tallest - 1) * GAP_Y
    for i, column in enumerate(columns):
        top = (height - (len(column) * BOX_H + (len(column) - 1) * GAP_Y)) // 2
        for j, step in enumerate(column):
            pos[step] = (PAD + i * (BOX_W + GAP_X), top + j * (BOX_H + GAP_Y))
    width = PAD * 2 + len(columns) * BOX_W + (len(columns) - 1) * GAP_X
    parts = [
        f'<svg class="dag" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}"'
        f' viewBox="0 0 {width} {height}" role="img" aria-label="step graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"'
        ' markerHeight="7" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"'
        ' fill="#888"/></marker></defs>',
    ]
    for step, parents in deps.items():
        for parent in parents:
            (x1, y1), (x2, y2) = pos[parent], pos[step]
            sx, sy, ex, ey = x1 + BOX_W, y1 + BOX_H // 2, x2 - 2, y2 + BOX_H // 2
            mid = (sx + ex) // 2
            parts.append(
                f'<path d="M {sx} {sy} C {mid} {sy}, {mid} {ey}, {ex} {ey}" fill="none"'
                ' stroke="#888" stroke-width="1.5" marker-end="url(#arrow)"/>'
            )
    for step in deps:
        x, y = pos[step]
        node = nodes.get(step) or Node(step, "waiting", "")
        fill, stroke = COLOURS.get(node.status, COLOURS["waiting"])
        title = escape(f"{step}: {node.status} {node.label}".strip())
        parts.append(
            f'<a href="{escape(link + quote(step, safe=""))}" class="step" data-step="{escape(step)}"'
            f' data-status="{escape(node.status)}"><title>{title}</title>'
            f'<rect x="{x}" y="{y}" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{fill}"'
            f' stroke="{stroke}" stroke-width="2"/>'
            f'<text x="{x + 10}" y="{y + 21}" class="step-id">{escape(_fit(step, 24))}</text>'
            f'<text x="{x + 10}" y="{y + 40}" class="step-label">'
            f"{escape(_fit(node.status + ('  ' + node.label if node.label else ''), 34))}</text></a>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _fit(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def node_for(step_id: str, step: dict[str, Any] | None, status: str) -> Node:
    """A node from a stored step's ``to_json()`` (or none yet: ``status`` says why)."""
    if step is None:
        return Node(step_id, status, "")
    cost = step.get("cost_usd")
    money = "unpriced" if cost is None else f"${cost:.6f}"
    seconds = step.get("duration_s") or 0.0
    if step.get("status") == "skipped":
        label = ""
    elif step.get("calls"):
        label = f"{seconds:.2f}s · {money}"
    else:  # a tool step, or no call made: nothing paid
        label = f"{seconds:.2f}s"
    return Node(step_id, step.get("status", status), label)
