"""Conversation threads: earlier turns are sent first, trimmed oldest-first to the context window."""

from __future__ import annotations

import json

from flowrun import load_workflow, run_workflow
from flowrun.provider.catalog import model_info
from flowrun.provider.tokens import count_messages
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import write

SUPPORT = """\
version: 1
name: support
inputs:
  customer_id: {type: string}
  message: {type: string}
defaults:
  model: gpt-4o-mini
  max_completion_tokens: 100
steps:
  reply:
    type: chat
    thread: "support:{{ inputs.customer_id }}"
    system: You are a support agent.
    prompt: "{{ inputs.message }}"
outputs:
  reply: "{{ steps.reply.output }}"
"""


def _say(wf, customer: str, message: str, reply: str, server) -> None:
    server.add(Reply(content=reply), match=message)
    res = flowrun("run", wf, "-i", f"customer_id={customer}", "-i", f"message={message}")
    assert res.code == 0, res.stderr
    assert f"reply: {reply}" in res.stdout


def _roles_and_texts(request) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in request.messages]


def test_the_next_run_with_the_same_key_sends_earlier_turns(server, tmp_path):
    wf = write(tmp_path, SUPPORT)
    _say(wf, "c1", "My order is late", "Sorry! Which order?", server)
    _say(wf, "c1", "Order 42", "Order 42 ships today.", server)
    _say(wf, "c2", "Hello", "Hi!", server)

    first, second, other = server.requests_to("/chat/completions")
    assert _roles_and_texts(first) == [
        ("system", "You are a support agent."),
        ("user", "My order is late"),
    ]
    assert _roles_and_texts(second) == [
        ("system", "You are a support agent."),
        ("user", "My order is late"),
        ("assistant", "Sorry! Which order?"),
        ("user", "Order 42"),
    ]
    assert _roles_and_texts(other) == [("system", "You are a support agent."), ("user", "Hello")]


def test_threads_list_show_clear(server, tmp_path):
    wf = write(tmp_path, SUPPORT)
    _say(wf, "c1", "My order is late", "Sorry! Which order?", server)
    _say(wf, "c1", "Order 42", "Order 42 ships today.", server)
    _say(wf, "c2", "Hello", "Hi!", server)

    listed = json.loads(flowrun("threads", "list", "--json").stdout)
    assert {(t["thread"], t["messages"]) for t in listed} == {("support:c1", 4), ("support:c2", 2)}
    text = flowrun("threads", "list").stdout
    assert "support:c1" in text and "support:c2" in text

    shown = json.loads(flowrun("threads", "show", "support:c1", "--json").stdout)
    assert shown["messages"] == [
        {"role": "user", "content": "My order is late"},
        {"role": "assistant", "content": "Sorry! Which order?"},
        {"role": "user", "content": "Order 42"},
        {"role": "assistant", "content": "Order 42 ships today."},
    ]
    human = flowrun("threads", "show", "support:c1").stdout
    assert human.splitlines()[:2] == ["[user] My order is late", "[assistant] Sorry! Which order?"]

    cleared = flowrun("threads", "clear", "support:c1")
    assert cleared.code == 0 and "cleared thread 'support:c1' (4 messages)" in cleared.stdout
    _say(wf, "c1", "Anyone there?", "Yes.", server)
    assert _roles_and_texts(server.requests[-1]) == [
        ("system", "You are a support agent."),
        ("user", "Anyone there?"),
    ]

    for args in (("threads", "show", "nobody"), ("threads", "clear", "nobody")):
        res = flowrun(*args)
        assert res.code == 2 and "no thread" in res.stderr


def test_empty_threads_list():
    res = flowrun("threads", "list")
    assert res.code == 0 and "no threads yet" in res.stdout


def test_a_failed_call_adds_nothing_to_the_thread(server, tmp_path):
    wf = write(tmp_path, SUPPORT)
    server.add(Reply(status=400, error="bad request"))
    res = flowrun("run", wf, "-i", "customer_id=c1", "-i", "message=hello")
    assert res.code == 1
    assert json.loads(flowrun("threads", "list", "--json").stdout) == []


def test_history_is_trimmed_oldest_first_to_the_context_window(server, tmp_path):
    # gpt-3.5-turbo: 16,385 tokens of context; 4,096 are kept for the reply
    wf = write(
        tmp_path,
        SUPPORT.replace("gpt-4o-mini", "gpt-3.5-turbo").replace(
            "max_completion_tokens: 100", "max_completion_tokens: 4096"
        ),
    )
    long = {n: f"turn {n}: " + "lorem ipsum " * 2400 for n in (1, 2, 3)}  # ~4,800 tokens each
    for n, text in long.items():
        server.add(Reply(content=f"answer {n}"), match=f"turn {n}:")
        res = flowrun("run", wf, "-i", "customer_id=c9", "-i", f"message={text}")
        assert res.code == 0, res.stderr

    *_, second, third = server.requests_to("/chat/completions")
    assert [m["content"][:7] for m in second.messages] == [
        "You are",
        "turn 1:",
        "answer ",
        "turn 2:",
    ]
    # turn 1 no longer fits: it is dropped whole (question and answer), the newest turns stay
    assert _roles_and_texts(third)[1:3] == [("user", long[2]), ("assistant", "answer 2")]
    assert [m["role"] for m in third.messages] == ["system", "user", "assistant", "user"]
    assert third.messages[-1]["content"] == long[3]
    window = model_info("gpt-3.5-turbo").context_window
    assert count_messages(third.messages, "gpt-3.5-turbo") + 4096 <= window
    with_turn_1 = [*second.messages[:3], *third.messages[1:]]
    assert count_messages(with_turn_1, "gpt-3.5-turbo") + 4096 > window
    # the store keeps every turn
    shown = json.loads(flowrun("threads", "show", "support:c9", "--json").stdout)
    assert len(shown["messages"]) == 6


def test_threads_need_the_run_store(server, tmp_path):
    wf = load_workflow(write(tmp_path, SUPPORT))
    result = run_workflow(wf, {"customer_id": "c1", "message": "hi"}, store=False)
    assert result.status == "failed"
    assert "thread: needs the run store" in result.error
    assert server.requests == []


def test_each_stored_turn_names_the_run_that_added_it(server, tmp_path):
    from tests.run_helpers import query

    wf = write(tmp_path, SUPPORT)
    _say(wf, "c9", "First question", "First answer", server)
    _say(wf, "c9", "Second question", "Second answer", server)
    runs = [r["run_id"] for r in json.loads(flowrun("runs", "list", "--json").stdout)][::-1]
    stored = query(
        "SELECT role, run_id FROM thread_messages WHERE thread='support:c9' ORDER BY seq"
    )
    assert stored == [
        ("user", runs[0]),
        ("assistant", runs[0]),
        ("user", runs[1]),
        ("assistant", runs[1]),
    ]
