"""A loaded workflow: the file's model, its text and positions, and what the loader resolved
(dependencies, schemas, tool functions). Built by ``loader``; read by the checks and the engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowrun.format.spec import Workflow
from flowrun.format.yaml_source import SourceMap

if TYPE_CHECKING:
    import networkx as nx

    from flowrun.format.graph import StepOrder
    from flowrun.format.server_data import ServerEntry


@dataclass
class LoadedWorkflow:
    """A valid workflow with everything the executor needs resolved."""

    spec: Workflow
    text: str
    source: SourceMap
    path: Path | None = None
    base_dir: Path = field(default_factory=Path.cwd)
    dependencies: dict[str, frozenset[str]] = field(default_factory=dict)
    schemas: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    functions: dict[str, Any] = field(default_factory=dict)
    servers: dict[str, ServerEntry] = field(default_factory=dict)  # by name, usable ones
    _graph: nx.DiGraph | None = field(default=None, init=False, repr=False, compare=False)
    _order: StepOrder | None = field(default=None, init=False, repr=False, compare=False)
    _aggregate: tuple[Workflow, frozenset[str]] | None = field(
        default=None, init=False, repr=False, compare=False
    )

    @property
    def graph(self) -> nx.DiGraph:
        """The step DAG (edge ``dep -> step``), built on first use.

        Built lazily so that ``flowrun validate`` does not pay for importing networkx;
        the cycle check works on ``dependencies`` directly.
        """
        if self._graph is None:
            from flowrun.format.graph import build_graph

            self._graph = build_graph(self.dependencies)
        return self._graph

    @property
    def order(self) -> StepOrder:
        """The DAG as the executor walks it (readers, dependency counts, topological index),
        built on first use without networkx."""
        if self._order is None:
            from flowrun.format.graph import StepOrder

            self._order = StepOrder(self.dependencies)
        return self._order

    @property
    def aggregate_ids(self) -> frozenset[str]:
        """The ids of the ``aggregate: true`` steps, worked out once per spec (every record's
        executor asks)."""
        if self._aggregate is None or self._aggregate[0] is not self.spec:
            from flowrun.format.spec import aggregate_steps

            self._aggregate = (self.spec, frozenset(aggregate_steps(self.spec)))
        return self._aggregate[1]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def content_hash(self) -> str:
        import hashlib

        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()

    @property
    def file(self) -> str:
        return self.source.file
