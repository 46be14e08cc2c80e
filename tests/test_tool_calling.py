"""Function calling inside ``chat`` steps: the tool loop against the loopback server."""

from __future__ import annotations

import json

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.testing import RecordedRequest, Reply, ToolCall
from tests.flow_files import make_flow
from tests.helpers import flowrun

TOOLS = '''
import asyncio
import threading

both_running = threading.Barrier(2, timeout=10)
ORDERS = {"A1": {"id": "A1", "status": "shipped"}, "B2": {"id": "B2", "status": "packing"}}


def lookup_order(order_id: str) -> dict:
    """Find an order by id."""
    both_running.wait()  # returns only when shipping_eta runs at the same time
    if order_id not in ORDERS:
        raise KeyError(f"no order {order_id}")
    return ORDERS[order_id]


def shipping_eta(order_id: str, express: bool = False) -> str:
    """Estimated delivery date of an order."""
    both_running.wait()
    return "2025-01-03" if express else "2025-01-07"


def find_order(order_id: str) -> dict:
    """Find an order by id."""
    if order_id not in ORDERS:
        raise KeyError(f"no order {order_id}")
    return ORDERS[order_id]


async def slow_lookup(order_id: str) -> str:
    """Very slow."""
    await asyncio.sleep(5)
    return "too late"
'''

FLOW = """\
version: 1
name: tool-loop
defaults: {{model: gpt-4o-mini}}
tools:
  lookup_order: {{function: "TOOLS:lookup_order"}}
  shipping_eta: {{function: "TOOLS:shipping_eta"}}
  find_order: {{function: "TOOLS:find_order"}}
  slow_lookup: {{function: "TOOLS:slow_lookup", timeout_s: 0.2}}
steps:
  help:
    type: chat
    system: You are a support agent.
    prompt: Where is my order A1?
    tools: {tools}
{extra}
outputs:
  answer: "{{{{ steps.help.output }}}}"
"""


def flow(tmp_path, tools: str = "[lookup_order, shipping_eta]", extra: str = "") -> object:
    return make_flow(tmp_path, FLOW.format(tools=tools, extra=extra), TOOLS)


def tool_messages(req: RecordedRequest) -> dict[str, str]:
    """``{tool_call_id: content}`` of the tool messages in a request."""
    return {m["tool_call_id"]: m["content"] for m in req.messages if m["role"] == "tool"}


def answer_from_tool_results(req: RecordedRequest) -> Reply:
    return Reply(content="results: " + " | ".join(tool_messages(req).values()))


def test_two_parallel_calls_run_concurrently_and_are_answered_by_id(server, tmp_path):
    server.add(
        Reply(
            tool_calls=[
                ToolCall("lookup_order", {"order_id": "A1"}, id="call_order"),
                ToolCall("shipping_eta", {"order_id": "A1", "express": True}, id="call_eta"),
            ]
        )
    )
    server.add(answer_from_tool_results)
    res = flowrun("run", flow(tmp_path), "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"]["answer"] == 'results: {"id": "A1", "status": "shipped"} | 2025-01-03'

    first, second = server.requests_to("/chat/completions")
    assert [t["function"]["name"] for t in first.body["tools"]] == ["lookup_order", "shipping_eta"]
    assert second.messages[:2] == first.messages
    assert second.messages[2] == {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_order",
                "type": "function",
                "function": {"name": "lookup_order", "arguments": '{"order_id": "A1"}'},
            },
            {
                "id": "call_eta",
                "type": "function",
                "function": {
                    "name": "shipping_eta",
                    "arguments": '{"order_id": "A1", "express": true}',
                },
            },
        ],
    }
    assert second.messages[3:] == [
        {
            "role": "tool",
            "tool_call_id": "call_order",
            "content": '{"id": "A1", "status": "shipped"}',
        },
        {"role": "tool", "tool_call_id": "call_eta", "content": "2025-01-03"},
    ]
    # every call is in the step's --json output: name, arguments, result, duration
    calls = doc["steps"]["help"]["tool_calls"]
    assert [{k: v for k, v in c.items() if k != "duration_s"} for c in calls] == [
        {
            "id": "call_order",
            "name": "lookup_order",
            "arguments": {"order_id": "A1"},
            "result": {"id": "A1", "status": "shipped"},
            "round": 1,
        },
        {
            "id": "call_eta",
            "name": "shipping_eta",
            "arguments": {"order_id": "A1", "express": True},
            "result": "2025-01-03",
            "round": 1,
        },
    ]
    assert all(isinstance(c["duration_s"], float) for c in calls)
    assert doc["steps"]["help"]["calls"] == 2

    # ... and in the run store
    shown = flowrun("runs", "show", doc["run_id"], "--json")
    assert shown.code == 0, shown.stderr
    assert json.loads(shown.stdout)["steps"]["help"]["tool_calls"] == calls


def test_the_loop_repeats_rounds_until_the_model_answers(server, tmp_path):
    server.add(Reply(tool_calls=[ToolCall("find_order", {"order_id": "A1"})]))
    server.add(Reply(tool_calls=[ToolCall("find_order", {"order_id": "B2"})]))
    server.add(answer_from_tool_results)
    result = run_workflow(flow(tmp_path, "[find_order]"), store=False)
    assert result.status == "succeeded", result.error
    assert result.outputs["answer"] == (
        'results: {"id": "A1", "status": "shipped"} | {"id": "B2", "status": "packing"}'
    )
    requests = server.requests_to("/chat/completions")
    assert [len(r.messages) for r in requests] == [2, 4, 6]
    step = result.steps["help"]
    assert [(c["arguments"]["order_id"], c["round"]) for c in step.tool_calls] == [
        ("A1", 1),
        ("B2", 2),
    ]
    assert len(step.calls) == 3


def test_exceeding_max_tool_rounds_fails_the_step(server, tmp_path):
    server.add(Reply(tool_calls=[ToolCall("find_order", {"order_id": "A1"})]), times=None)
    res = flowrun("run", flow(tmp_path, "[find_order]", "    max_tool_rounds: 2"), "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["steps"]["help"]["error"] == (
        "the model was still calling tools after max_tool_rounds=2 rounds; "
        "raise max_tool_rounds or make the prompt say when to stop"
    )
    assert len(server.requests_to("/chat/completions")) == 3
    assert len(doc["steps"]["help"]["tool_calls"]) == 2
    assert "max_tool_rounds=2" in res.stderr


@pytest.mark.parametrize(
    ("choice", "sent"),
    [
        ("auto", "auto"),
        ("none", "none"),
        ("required", "required"),
        ("find_order", {"type": "function", "function": {"name": "find_order"}}),
    ],
)
def test_tool_choice_is_sent_as_the_api_expects(server, tmp_path, choice, sent):
    forced = choice in ("required", "find_order")
    if forced:
        server.add(Reply(tool_calls=[ToolCall("find_order", {"order_id": "B2"})]))
    server.add(Reply(content="done"))
    extra = f"    tool_choice: {choice}"
    result = run_workflow(flow(tmp_path, "[find_order, shipping_eta]", extra), store=False)
    assert result.status == "succeeded", result.error
    requests = server.requests_to("/chat/completions")
    assert requests[0].body["tool_choice"] == sent
    if forced:  # once the forced call happened the model may answer
        assert [r.body["tool_choice"] for r in requests] == [sent, "auto"]
    else:
        assert len(requests) == 1


def test_a_raising_tool_sends_its_error_to_the_model_and_the_run_goes_on(server, tmp_path):
    server.add(Reply(tool_calls=[ToolCall("find_order", {"order_id": "Z9"}, id="c1")]))
    server.add(answer_from_tool_results)
    result = run_workflow(flow(tmp_path, "[find_order]"), store=False)
    assert result.status == "succeeded", result.error
    assert result.outputs["answer"] == 'results: {"error": "KeyError: \'no order Z9\'"}'
    (call,) = result.steps["help"].tool_calls
    assert call["error"] == "KeyError: 'no order Z9'"
    assert "result" not in call


def test_bad_arguments_are_reported_back_to_the_model(server, tmp_path):
    server.add(
        Reply(
            tool_calls=[
                ToolCall("find_order", '{"order_id": "A1"', id="broken_json"),
                ToolCall("find_order", {"order_id": 7, "verbose": True}, id="wrong_schema"),
                ToolCall("delete_everything", {}, id="unknown_tool"),
            ]
        )
    )
    server.add(Reply(content="sorry"))
    result = run_workflow(flow(tmp_path, "[find_order]"), store=False)
    assert result.status == "succeeded", result.error
    sent = tool_messages(server.requests_to("/chat/completions")[1])
    assert {k: json.loads(v) for k, v in sent.items()} == {
        "broken_json": {
            "error": "invalid arguments for find_order: arguments are not valid JSON: "
            "Expecting ',' delimiter: line 1 column 18 (char 17)"
        },
        "wrong_schema": {
            "error": "invalid arguments for find_order: argument 'order_id': "
            "Input should be a valid string; unexpected argument 'verbose'"
        },
        "unknown_tool": {
            "error": "invalid arguments for delete_everything: "
            "no tool named 'delete_everything' (available: find_order)"
        },
    }
    calls = result.steps["help"].tool_calls
    assert calls[0]["arguments"] == '{"order_id": "A1"'  # kept verbatim when not JSON
    assert calls[1]["arguments"] == {"order_id": 7, "verbose": True}


def test_a_tool_that_times_out_reports_it_to_the_model(server, tmp_path):
    server.add(Reply(tool_calls=[ToolCall("slow_lookup", {"order_id": "A1"}, id="slow")]))
    server.add(answer_from_tool_results)
    result = run_workflow(flow(tmp_path, "[slow_lookup]"), store=False)
    assert result.status == "succeeded", result.error
    assert result.outputs["answer"] == (
        'results: {"error": "tool \'slow_lookup\' timed out after 0.2s"}'
    )
    assert result.steps["help"].tool_calls[0]["duration_s"] < 2


def test_streaming_assembles_streamed_tool_calls(server, tmp_path):
    server.add(
        Reply(
            tool_calls=[
                ToolCall("lookup_order", {"order_id": "A1"}, id="s1"),
                ToolCall("shipping_eta", {"order_id": "A1", "express": False}, id="s2"),
            ]
        )
    )
    server.add(lambda req: Reply(content="Your order " + tool_messages(req)["s2"]))
    wf = load_workflow(flow(tmp_path, extra="    stream: true"))
    streamed: list[str] = []
    result = run_workflow(wf, store=False, on_text=lambda step, text: streamed.append(text))
    assert result.status == "succeeded", result.error
    assert result.outputs["answer"] == "Your order 2025-01-07"
    assert "".join(streamed) == "Your order 2025-01-07"
    first, second = server.requests_to("/chat/completions")
    assert first.body["stream"] is True
    assert second.messages[2]["tool_calls"] == [
        {
            "id": "s1",
            "type": "function",
            "function": {"name": "lookup_order", "arguments": '{"order_id": "A1"}'},
        },
        {
            "id": "s2",
            "type": "function",
            "function": {
                "name": "shipping_eta",
                "arguments": '{"order_id": "A1", "express": false}',
            },
        },
    ]
    assert [c["result"] for c in result.steps["help"].tool_calls] == [
        {"id": "A1", "status": "shipped"},
        "2025-01-07",
    ]


QUITTERS = '''
import asyncio
import sys


def quit_now() -> str:
    """Gives up."""
    sys.exit(3)


async def async_quit() -> str:
    """Gives up too."""
    await asyncio.sleep(0)
    sys.exit("no more")
'''

QUIT_FLOW = """\
version: 1
name: quitters
defaults: {model: gpt-4o-mini}
tools:
  quit_now: {function: "TOOLS:quit_now"}
  async_quit: {function: "TOOLS:async_quit", timeout_s: 5}
steps:
  help: {type: chat, prompt: Try the tools., tools: [quit_now, async_quit]}
outputs:
  answer: "{{ steps.help.output }}"
"""


def test_a_tool_that_calls_sys_exit_is_a_failed_tool_call_and_the_run_goes_on(server, tmp_path):
    server.add(Reply(tool_calls=[ToolCall("quit_now", id="c1"), ToolCall("async_quit", id="c2")]))
    server.add(answer_from_tool_results)
    res = flowrun("run", make_flow(tmp_path, QUIT_FLOW, QUITTERS), "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"]["answer"] == (
        """results: {"error": "tool 'quit_now' called sys.exit(3)"}"""
        """ | {"error": "tool 'async_quit' called sys.exit('no more')"}"""
    )
    errors = [c["error"] for c in doc["steps"]["help"]["tool_calls"]]
    assert errors == [
        "tool 'quit_now' called sys.exit(3)",
        "tool 'async_quit' called sys.exit('no more')",
    ]


def test_tool_call_records_of_a_foreach_step_name_their_item(server, tmp_path):
    for order in ("A1", "B2"):
        server.add(
            Reply(tool_calls=[ToolCall("find_order", {"order_id": order})]),
            match=f"Where is order {order}?",
        )
    server.add(answer_from_tool_results, times=2)
    text = FLOW.format(tools="[find_order]", extra="").replace(
        "    prompt: Where is my order A1?\n",
        '    foreach: ["A1", "B2"]\n    prompt: "Where is order {{ item }}?"\n',
    )
    res = flowrun("run", make_flow(tmp_path, text, TOOLS), "--json")
    assert res.code == 0, res.stderr
    calls = json.loads(res.stdout)["steps"]["help"]["tool_calls"]
    assert sorted((c["item"], c["arguments"]["order_id"], c["round"]) for c in calls) == [
        (0, "A1", 1),
        (1, "B2", 1),
    ]
