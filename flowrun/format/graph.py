"""The step DAG: building it, finding cycles, ready-set order and text drawings.

networkx is imported on first use (drawings, ancestors): ``find_cycles``, the topological
order and the executor's ``ReadyQueue`` work on the plain dependency mapping, so validating a
file or running it does not load it.
"""

from __future__ import annotations

import heapq
import weakref
from collections import deque
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


def ancestors(dependencies: Mapping[str, Iterable[str]], step: str) -> set[str]:
    """Every step ``step`` reads, directly or through others (networkx's ``ancestors``,
    without importing it)."""
    seen: set[str] = set()
    todo = [d for d in dependencies.get(step, ()) if d in dependencies]
    while todo:
        dep = todo.pop()
        if dep not in seen:
            seen.add(dep)
            todo.extend(d for d in dependencies[dep] if d in dependencies and d not in seen)
    return seen


def find_cycles(dependencies: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every dependency cycle, as closed paths (``["a", "b", "a"]``), sorted by first step.

    ``dependencies`` maps each step to the steps it reads. There is one path per group of
    steps that depend on each other (a strongly connected component), plus one per step
    that reads itself. A path follows the data, like the graph's edges (``a -> b``: b reads
    a's output), starts at the alphabetically first step of its group and is a shortest
    cycle through it, so the message is the same on every run.
    """
    readers: dict[str, list[str]] = {n: [] for n in dependencies}
    for step in sorted(dependencies):
        for dep in sorted(set(dependencies[step])):
            if dep in readers:
                readers[dep].append(step)
    cycles = []
    for group in _components(readers):
        if len(group) > 1:
            cycles.append(_ring(min(group), readers, set(group)))
    cycles += [[n, n] for n in readers if n in readers[n]]
    return sorted(cycles)


def find_cycle(dependencies: Mapping[str, Iterable[str]]) -> list[str] | None:
    """The first of ``find_cycles``, or None if there is none."""
    cycles = find_cycles(dependencies)
    return cycles[0] if cycles else None


def _components(edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan's algorithm, iterative: no recursion limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def enter(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)

    for root in sorted(edges):
        if root in index:
            continue
        enter(root)
        work = [(root, iter(edges[root]))]
        while work:
            node, pending = work[-1]
            for nxt in pending:
                if nxt not in index:
                    enter(nxt)
                    work.append((nxt, iter(edges[nxt])))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == node:
                            break
                    found.append(group)
    return found


def _ring(start: str, edges: Mapping[str, list[str]], group: set[str]) -> list[str]:
    """A shortest closed path from ``start`` back to it inside ``group`` (breadth first)."""
    came_from: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges[node]:
            if nxt == start and node != start:
                path = [node]
                while (prev := came_from[path[-1]]) is not None:
                    path.append(prev)
                return path[::-1] + [start]
            if nxt in group and nxt not in came_from:
                came_from[nxt] = node
                queue.append(nxt)
    raise AssertionError(f"{start} is not on a cycle of its group")


def topological_index(graph: nx.DiGraph) -> dict[str, int]:
    """A deterministic topological position for every step (ties broken by name): the
    order of ``networkx.lexicographical_topological_sort``.

    Cached per graph object.
    """
    try:
        return _INDEX_CACHE[graph]
    except KeyError:
        pass
    index = _lexicographic({n: set(graph.successors(n)) for n in graph}, dict(graph.in_degree))
    _INDEX_CACHE[graph] = index
    return index


def _lexicographic(
    readers: Mapping[str, Iterable[str]], waiting: Mapping[str, int]
) -> dict[str, int]:
    """Kahn's algorithm taking the smallest name among the ready steps each time."""
    left = dict(waiting)
    heap = [n for n, w in left.items() if w == 0]
    heapq.heapify(heap)
    index: dict[str, int] = {}
    while heap:
        node = heapq.heappop(heap)
        index[node] = len(index)
        for succ in readers[node]:
            left[succ] -= 1
            if left[succ] == 0:
                heapq.heappush(heap, succ)
    return index


# graphs are not changed once a workflow is loaded; entries go with their graph
_INDEX_CACHE: weakref.WeakKeyDictionary[Any, dict[str, int]] = weakref.WeakKeyDictionary()


class StepOrder:
    """The DAG as the executor walks it, built once per workflow from its dependency mapping
    (no networkx): each step's readers, its number of dependencies, and its topological
    position (``topological_index``'s)."""

    def __init__(self, dependencies: Mapping[str, Iterable[str]]) -> None:
        readers: dict[str, list[str]] = {n: [] for n in dependencies}
        waiting: dict[str, int] = {}
        for step, deps in dependencies.items():
            known = {d for d in deps if d in readers}  # one edge per pair, as in the graph
            waiting[step] = len(known)
            for dep in known:
                readers[dep].append(step)
        self.readers = readers
        self.waiting = waiting
        self.index = _lexicographic(readers, waiting)
        #: the steps without dependencies, in topological-index order
        self.roots = sorted((n for n, w in waiting.items() if w == 0), key=self.index.__getitem__)


class ReadyQueue:
    """Hands out steps whose dependencies are all done, in topological-index order.

    The executor calls ``ready()`` for what may start now and ``mark_done()`` as each step
    finishes, so a step starts as soon as its own dependencies are done, not level by level.
    ``done``: steps done before the queue starts (never handed out).
    """

    def __init__(self, order: StepOrder, done: Iterable[str] = ()) -> None:
        self._readers = order.readers
        self._index = order.index
        self._waiting = dict(order.waiting)
        self._done: set[str] = set()
        # the steps whose last dependency was marked done since the last ``ready()`` (kept
        # as they come, not found by a scan over every step)
        self._fresh: list[str] = []
        for step in done:
            self.mark_done(step)
        if self._done:  # (a step done already is never handed out, whatever its dependencies)
            self._fresh = [n for n in order.roots + self._fresh if n not in self._done]
        else:
            self._fresh = list(order.roots)

    def ready(self) -> list[str]:
        """Steps that may start now and were not handed out before."""
        out, self._fresh = self._fresh, []
        if len(out) > 1:
            out.sort(key=self._index.__getitem__)
        return out

    def mark_done(self, step: str) -> None:
        done = self._done
        if step in done:
            return
        done.add(step)
        waiting = self._waiting
        for succ in self._readers[step]:
            left = waiting[succ] = waiting[succ] - 1
            if left == 0 and succ not in done:
                self._fresh.append(succ)

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
