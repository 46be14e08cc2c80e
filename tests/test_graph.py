"""The step DAG: cycle paths, ready-set order, and the mermaid/dot drawings."""

from __future__ import annotations

import textwrap

import pytest

from flowrun.format.graph import (
    ReadyQueue,
    StepOrder,
    build_graph,
    find_cycle,
    find_cycles,
    to_dot,
    to_mermaid,
)
from tests.helpers import WORKFLOWS, flowrun

# --- cycles ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dependencies", "cycle"),
    [
        ({"a": [], "b": ["a"], "c": ["a", "b"]}, None),
        ({"a": ["b"], "b": ["a"]}, ["a", "b", "a"]),
        ({"solo": ["solo"]}, ["solo", "solo"]),
        # c reads b, b reads a, a reads c: the data flows a -> b -> c -> a.
        ({"c": ["b"], "b": ["a"], "a": ["c"]}, ["a", "b", "c", "a"]),
        # The same cycle, declared in another order, prints the same.
        ({"a": ["c"], "b": ["a"], "c": ["b"]}, ["a", "b", "c", "a"]),
        # A cycle away from the first step, behind an acyclic part.
        ({"a": [], "x": ["a", "z"], "y": ["x"], "z": ["y"]}, ["x", "y", "z", "x"]),
        # Unknown dependencies are ignored (they are reported elsewhere).
        ({"a": ["ghost"], "b": ["a"]}, None),
    ],
)
def test_find_cycle_gives_a_closed_path(dependencies, cycle):
    assert find_cycle(dependencies) == cycle


def test_find_cycle_handles_long_chains_without_recursion_limits():
    chain = {f"s{i:05}": [f"s{i - 1:05}"] if i else [] for i in range(5000)}
    assert find_cycle(chain) is None
    chain["s00000"] = ["s04999"]
    cycle = find_cycle(chain)
    assert cycle[0] == cycle[-1] == "s00000"
    assert len(cycle) == 5001


def test_find_cycles_gives_one_path_per_group_of_steps_and_per_self_reference():
    dependencies = {
        "a": ["b"],
        "b": ["a"],
        "c": ["e"],
        "d": ["c"],
        "e": ["d", "e"],
        "f": ["f"],
        "g": ["a", "f"],
        # two cycles through one group: one path, the shortest through its first step
        "p": ["r", "q"],
        "q": ["p"],
        "r": ["q"],
    }
    assert find_cycles(dependencies) == [
        ["a", "b", "a"],
        ["c", "d", "e", "c"],
        ["e", "e"],
        ["f", "f"],
        ["p", "q", "p"],
    ]
    assert find_cycle(dependencies) == ["a", "b", "a"]
    assert find_cycles({"a": [], "b": ["a"]}) == []


def test_every_cycle_in_a_file_is_reported(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: loops
            defaults: {model: gpt-4o-mini}
            steps:
              a: {type: chat, prompt: "{{ steps.b.output }}"}
              b: {type: chat, prompt: "{{ steps.a.output }}"}
              c: {type: chat, prompt: "{{ steps.d.output }}"}
              d: {type: chat, prompt: "{{ steps.e.output }}"}
              e: {type: chat, prompt: "{{ steps.c.output }}"}
              f: {type: chat, prompt: "{{ steps.f.output }}"}
              g: {type: chat, prompt: "{{ steps.a.output }}"}
            """
        )
    )
    res = flowrun("validate", path)
    assert res.code == 2
    why = (
        " (a step cannot use its own output, directly or through other steps; remove one of "
        "these references or needs)"
    )
    assert res.stderr.splitlines() == [
        f"{path}:5:3: dependency cycle: a -> b -> a{why}",
        f"{path}:7:3: dependency cycle: c -> e -> d -> c{why}",
        f"{path}:10:3: dependency cycle: f -> f{why}",
    ]


def test_a_cycle_in_a_file_is_reported_with_its_path(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(
        textwrap.dedent(
            """\
            version: 1
            name: loop
            defaults: {model: gpt-4o-mini}
            steps:
              draft: {type: chat, prompt: "{{ steps.review.output }}"}
              review: {type: chat, prompt: "{{ steps.polish.output }}"}
              polish: {type: chat, prompt: x, needs: [draft]}
            """
        )
    )
    res = flowrun("validate", path)
    assert res.code == 2
    assert res.stderr.startswith(
        f"{path}:5:3: dependency cycle: draft -> polish -> review -> draft ("
    )


# --- the ready queue -------------------------------------------------------------------------


def drain(queue: ReadyQueue, finish_order: list[str]) -> list[list[str]]:
    """Mark steps done in ``finish_order``; return what became ready after each one."""
    handed = [queue.ready()]
    for step in finish_order:
        queue.mark_done(step)
        handed.append(queue.ready())
    return handed


def test_diamond_waits_for_both_branches():
    queue = ReadyQueue(StepOrder({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}))
    assert drain(queue, ["a", "c", "b", "d"]) == [["a"], ["b", "c"], [], ["d"], []]
    assert queue.finished


def test_a_step_starts_when_its_own_dependencies_are_done_not_level_by_level():
    # Two chains of different lengths: long1 -> long2 -> long3 and short1 -> short2.
    # short2 must start as soon as short1 is done, while long1 is still running.
    queue = ReadyQueue(
        StepOrder(
            {
                "long1": [],
                "long2": ["long1"],
                "long3": ["long2"],
                "short1": [],
                "short2": ["short1"],
                "join": ["long3", "short2"],
            }
        )
    )
    assert drain(queue, ["short1", "short2", "long1", "long2", "long3", "join"]) == [
        ["long1", "short1"],
        ["short2"],
        [],
        ["long2"],
        ["long3"],
        ["join"],
        [],
    ]
    assert queue.finished


def test_ready_order_is_deterministic_whatever_the_declaration_order():
    deps = {"z": [], "m": [], "a": ["z"], "b": ["m"], "y": ["a", "b"]}
    orders = []
    for items in (list(deps.items()), list(reversed(deps.items()))):
        queue = ReadyQueue(StepOrder(dict(items)))
        orders.append(drain(queue, ["m", "z", "b", "a", "y"]))
    assert orders[0] == orders[1] == [["m", "z"], ["b"], ["a"], [], ["y"], []]


def test_ready_hands_out_each_step_once_and_mark_done_is_idempotent():
    queue = ReadyQueue(StepOrder({"a": [], "b": ["a"]}))
    assert queue.ready() == ["a"]
    assert queue.ready() == []
    queue.mark_done("a")
    queue.mark_done("a")
    assert queue.ready() == ["b"]
    assert not queue.finished
    queue.mark_done("b")
    assert queue.finished


def test_steps_done_before_the_queue_starts_are_never_handed_out():
    order = StepOrder({"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "e": []})
    # (given in an order where a step is done before its dependencies are)
    queue = ReadyQueue(order, done=["d", "b", "a"])
    assert drain(queue, ["c", "e"]) == [["c", "e"], [], []]
    assert queue.finished
    queue = ReadyQueue(order, done=["a", "b", "c", "d", "e"])
    assert queue.ready() == [] and queue.finished
    queue = ReadyQueue(order, done=["e"])
    assert drain(queue, ["a", "b", "c", "d"]) == [["a"], ["b", "c"], [], ["d"], []]


def test_step_order_is_networkx_lexicographic_topological_order():
    # the executor's order (built without networkx) is the one `flowrun graph` draws with
    import random

    import networkx as nx

    rng = random.Random(19)
    for _ in range(200):
        names = rng.sample([f"s{i}" for i in range(30)] + ["a", "B", "z-1", "é"], 12)
        deps = {n: [m for m in names[:i] if rng.random() < 0.3] for i, n in enumerate(names)}
        deps = dict(rng.sample(list(deps.items()), len(deps)))  # declaration order varies
        expected = list(nx.lexicographical_topological_sort(build_graph(deps)))
        index = StepOrder(deps).index
        assert sorted(index, key=index.__getitem__) == expected


# --- drawings ------------------------------------------------------------------------------


DIAMOND = {"fetch": [], "sum-up": ["fetch"], "tag": ["fetch"], "end": ["sum-up", "tag"]}


def test_mermaid_snapshot():
    labels = {"fetch": 'fetch "raw" (tool)'}
    assert to_mermaid(build_graph(DIAMOND), labels) == textwrap.dedent(
        """\
        flowchart TD
            fetch["fetch #quot;raw#quot; (tool)"]
            sum_up["sum-up"]
            tag["tag"]
            end_2["end"]
            fetch --> sum_up
            fetch --> tag
            sum_up --> end_2
            tag --> end_2
        """
    )


def test_mermaid_identifiers_stay_distinct():
    text = to_mermaid(build_graph({"a-b": [], "a_b": ["a-b"]}))
    assert text.splitlines()[1:] == ['    a_b["a-b"]', '    a_b_2["a_b"]', "    a_b --> a_b_2"]


def test_dot_snapshot():
    labels = {"tag": 'tag "x" \\ y'}
    assert to_dot(build_graph(DIAMOND), labels, name='my "flow"') == textwrap.dedent(
        """\
        digraph "my \\"flow\\"" {
            rankdir=TB;
            "fetch" [label="fetch"];
            "sum-up" [label="sum-up"];
            "tag" [label="tag \\"x\\" \\\\ y"];
            "end" [label="end"];
            "fetch" -> "sum-up";
            "fetch" -> "tag";
            "sum-up" -> "end";
            "tag" -> "end";
        }
        """
    )


def test_graph_command_mermaid_and_dot():
    res = flowrun("graph", WORKFLOWS / "summarize.yaml")
    assert res.code == 0, res.stderr
    assert res.stdout == textwrap.dedent(
        """\
        flowchart TD
            summary["summary (chat)"]
            title["title (chat)"]
            summary --> title
        """
    )
    res = flowrun("graph", WORKFLOWS / "summarize.yaml", "--format", "dot")
    assert res.code == 0, res.stderr
    assert res.stdout == textwrap.dedent(
        """\
        digraph "summarize" {
            rankdir=TB;
            "summary" [label="summary (chat)"];
            "title" [label="title (chat)"];
            "summary" -> "title";
        }
        """
    )


def test_graph_command_on_an_invalid_file_exits_2(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text("version: 1\nname: t\nsteps: {}\n")
    res = flowrun("graph", path)
    assert res.code == 2
    assert res.stderr == f"{path}:3:8: steps: a workflow needs at least one step\n"
    assert res.stdout == ""


def test_graph_command_rejects_an_unknown_format():
    res = flowrun("graph", WORKFLOWS / "summarize.yaml", "--format", "png")
    assert res.code == 2
    assert "'png' is not one of 'mermaid', 'dot'" in res.stderr


def test_ancestors_match_networkx() -> None:
    import networkx as nx

    from flowrun.format.graph import ancestors, build_graph

    deps = {"a": [], "b": ["a"], "c": ["a", "ghost"], "d": ["b", "c"], "e": ["d"], "f": []}
    graph = build_graph(deps)
    for step in deps:
        assert ancestors(deps, step) == nx.ancestors(graph, step), step
    assert ancestors(deps, "e") == {"a", "b", "c", "d"}
