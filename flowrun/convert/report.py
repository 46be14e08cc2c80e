"""What a conversion did: each node and what it became, and everything that did not convert.

Nothing is dropped silently: every key of the flow that is not converted is an ``Issue``. A
*blocking* issue means the converted workflow does not run the way the flow did (the command
exits 1); a *setup* issue is something to do outside the file before running it (export
environment variables, install requirements: exit 0, the file is runnable); the others are
listed for the reader and do not change the run (exit 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flowrun.errors import ConversionFailed as ConversionFailed
from flowrun.errors import NotAFlow as NotAFlow
from flowrun.errors import NotRunnable as NotRunnable


@dataclass(frozen=True)
class FlowProblem:
    """Something wrong with the promptflow flow itself, in one file (and node)."""

    file: str
    node: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: node '{self.node}'" if self.node else self.file
        return f"{where}: {self.message}"


@dataclass
class NodeEntry:
    node: str
    kind: str  #: what it was in promptflow, e.g. "llm (api chat)"
    became: str  #: what it is in flowrun, e.g. "chat step, messages from chat.jinja2"


@dataclass
class Issue:
    node: str | None
    what: str
    reason: str
    blocking: bool = True
    setup: bool = False  #: something to do before running (never blocking)

    def __str__(self) -> str:
        return (
            f"{self.node}: {self.what}: {self.reason}"
            if self.node
            else f"{self.what}: {self.reason}"
        )


@dataclass
class Report:
    flow_file: Path
    out_file: Path
    nodes: list[NodeEntry] = field(default_factory=list)
    issues: list[Issue] = field(default_factory=list)
    problems: list[str] = field(
        default_factory=list
    )  #: ``flowrun validate`` problems of the result
    steps: int = 0

    def add(
        self,
        node: str | None,
        what: str,
        reason: str,
        *,
        blocking: bool = True,
        setup: bool = False,
    ) -> None:
        self.issues.append(Issue(node, what, reason, blocking and not setup, setup))

    @property
    def runnable(self) -> bool:
        return not self.problems and not any(i.blocking for i in self.issues)

    def lines(self) -> list[str]:
        steps = f"{self.steps} step" + ("" if self.steps == 1 else "s")
        out = [f"converted {self.flow_file} -> {self.out_file} ({steps})", "nodes:"]
        width = max((len(n.node) for n in self.nodes), default=0)
        kind_width = max((len(n.kind) for n in self.nodes), default=0)
        out += [f"  {n.node:<{width}}  {n.kind:<{kind_width}}  -> {n.became}" for n in self.nodes]
        blocking = [i for i in self.issues if i.blocking]
        setup = [i for i in self.issues if i.setup]
        notes = [i for i in self.issues if not i.blocking and not i.setup]
        if blocking:
            out.append("not converted (the workflow does not run as the flow did):")
            out += [f"  - {i}" for i in blocking]
        if setup:
            out.append("before running it (outside the workflow file):")
            out += [f"  - {i}" for i in setup]
        if notes:
            out.append("not converted (no change to what runs):")
            out += [f"  - {i}" for i in notes]
        if self.problems:
            out.append("the converted workflow does not validate:")
            out += [f"  {p}" for p in self.problems]
        out.append(
            "result: runnable (flowrun validate passes)"
            if self.runnable
            else "result: needs changes before it runs as the flow did"
        )
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "flow": str(self.flow_file),
            "output": str(self.out_file),
            "runnable": self.runnable,
            "nodes": [n.__dict__ for n in self.nodes],
            "not_converted": [i.__dict__ for i in self.issues],
            "problems": self.problems,
        }
