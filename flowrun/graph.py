"""The step DAG: building it, finding cycles, ready-set order and text drawings.

networkx is imported on first use: ``find_cycle`` works on the plain dependency mapping, so
validating a file does not load it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import networkx as nx


def build_graph(dependencies: Mapping[str, Iterable[str]]) -> nx.DiGraph:
    """A DiGraph with an edge ``dep -> step`` for every dependency (unknown deps ignored)."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from(dependencies)
    for step, deps in dependencies.items():
        for dep in deps:
            if dep in dependencies:
                graph.add_edge(dep, step)
    return graph


def find_cycle(dependencies: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A dependency cycle as a closed path (``["a", "b", "a"]``), or None if there is none.

    ``dependencies`` maps each step to the steps it reads. The path follows the data, like
    the graph's edges (``a -> b``: b reads a's output), and starts at the alphabetically
    first step of the cycle, so the message is the same on every run.
    """
    deps = {n: sorted(d for d in ds if d in dependencies) for n, ds in dependencies.items()}
    done: set[str] = set()
    for root in sorted(deps):
        if root in done:
            continue
        path = [root]
        on_path = {root}
        pending = [iter(deps[root])]
        while pending:
            for dep in pending[-1]:
                if dep in on_path:
                    # path[i] reads path[i+1] ... and the last one reads dep.
                    ring = path[path.index(dep) :][::-1]
                    start = ring.index(min(ring))
                    ring = ring[start:] + ring[:start]
                    return ring + [ring[0]]
                if dep not in done:
                    path.append(dep)
                    on_path.add(dep)
                    pending.append(iter(deps[dep]))
                    break
            else:
                pending.pop()
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
    return None


def topological_index(graph: nx.DiGraph) -> dict[str, int]:
    """A deterministic topological position for every step (ties broken by name).

    Cached per graph object (a batch builds a ``ReadyQueue`` per record over one graph).
    """
    import networkx as nx

    try:
        return _INDEX_CACHE[graph]
    except KeyError:
        pass
    index = {n: i for i, n in enumerate(nx.lexicographical_topological_sort(graph))}
    _INDEX_CACHE[graph] = index
    return index


# graphs are not changed once a workflow is loaded; entries go with their graph
_INDEX_CACHE: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


class ReadyQueue:
    """Hands out steps whose dependencies are all done, in topological-index order.

    The executor calls ``ready()`` for what may start now and ``mark_done()`` as each step
    finishes, so a step starts as soon as its own dependencies are done, not level by level.
    """

    def __init__(self, graph: nx.DiGraph) -> None:
        self._graph = graph
        self._index = topological_index(graph)
        self._waiting = {n: graph.in_degree(n) for n in graph}
        self._handed_out: set[str] = set()
        self._done: set[str] = set()

    def ready(self) -> list[str]:
        """Steps that may start now and were not handed out before."""
        out = [n for n, w in self._waiting.items() if w == 0 and n not in self._handed_out]
        out.sort(key=self._index.__getitem__)
        self._handed_out.update(out)
        return out

    def mark_done(self, step: str) -> None:
        if step in self._done:
            return
        self._done.add(step)
        for succ in self._graph.successors(step):
            self._waiting[succ] -= 1

    @property
    def finished(self) -> bool:
        return len(self._done) == len(self._waiting)


def to_mermaid(graph: nx.DiGraph, labels: Mapping[str, str] | None = None) -> str:
    """The DAG as a Mermaid flowchart (nodes and edges in topological order)."""
    labels = labels or {}
    order = topological_index(graph)
    nodes = sorted(graph, key=order.__getitem__)
    idents = _mermaid_idents(nodes)
    lines = ["flowchart TD"]
    for node in nodes:
        label = labels.get(node, node).replace('"', "#quot;")
        lines.append(f'    {idents[node]}["{label}"]')
    for u, v in sorted(graph.edges, key=lambda e: (order[e[0]], order[e[1]])):
        lines.append(f"    {idents[u]} --> {idents[v]}")
    return "\n".join(lines) + "\n"


def to_dot(
    graph: nx.DiGraph, labels: Mapping[str, str] | None = None, name: str = "workflow"
) -> str:
    """The DAG in Graphviz DOT (nodes and edges in topological order)."""
    labels = labels or {}
    order = topological_index(graph)
    lines = [f"digraph {_dot_quote(name)} {{", "    rankdir=TB;"]
    for node in sorted(graph, key=order.__getitem__):
        label = _dot_quote(labels.get(node, node))
        lines.append(f"    {_dot_quote(node)} [label={label}];")
    for u, v in sorted(graph.edges, key=lambda e: (order[e[0]], order[e[1]])):
        lines.append(f"    {_dot_quote(u)} -> {_dot_quote(v)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _mermaid_idents(nodes: Iterable[str]) -> dict[str, str]:
    """A distinct Mermaid-safe identifier per step (``my-step`` -> ``my_step``)."""
    idents: dict[str, str] = {}
    used: set[str] = set()
    for node in nodes:
        base = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in node)
        ident, n = base or "_", 1
        while ident in used or ident in ("end", "graph", "subgraph", "flowchart"):
            n += 1
            ident = f"{base}_{n}"
        used.add(ident)
        idents[node] = ident
    return idents


def _dot_quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
