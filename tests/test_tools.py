"""Tools declared in a workflow: schemas from signatures, the ``tool`` step, validation errors."""

from __future__ import annotations

import json

from flowrun import load_workflow, run_workflow
from flowrun.testing import Reply
from tests.flow_files import make_flow, module_of
from tests.helpers import flowrun

TOOLS_MODULE = '''
from typing import Optional


def lookup_order(order_id: str, include_items: bool = False, note: Optional[str] = None) -> dict:
    """Find an order by its id.

    Looks in the order database.

    Args:
        order_id: The order's id, like A-123.
        include_items: Whether to list the order's items.
    """
    return {"id": order_id, "status": "shipped"}


def raw_search(*args, **kwargs):
    return kwargs
'''

DECLARED = """\
version: 1
name: declared
defaults: {model: gpt-4o-mini}
tools:
  lookup_order:
    function: TOOLS:lookup_order
  quote:
    function: tests.tool_fixtures:shipping_quote
  search:
    function: TOOLS:raw_search
    description: Full-text search of the help center
    parameters:
      type: object
      properties:
        query: {type: string}
      required: [query]
steps:
  answer:
    type: chat
    prompt: hello
    tools: [lookup_order, quote, search]
outputs:
  answer: "{{ steps.answer.output }}"
"""


def test_the_server_receives_tools_built_from_signatures_docstrings_and_overrides(server, tmp_path):
    server.add(Reply(content="hi"))
    result = run_workflow(make_flow(tmp_path, DECLARED, TOOLS_MODULE), store=False)
    assert result.status == "succeeded", result.error
    (request,) = server.requests_to("/chat/completions")
    assert request.body["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "lookup_order",
                "description": "Find an order by its id.\n\nLooks in the order database.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "order_id": {
                            "type": "string",
                            "description": "The order's id, like A-123.",
                        },
                        "include_items": {
                            "type": "boolean",
                            "default": False,
                            "description": "Whether to list the order's items.",
                        },
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                    },
                    "required": ["order_id"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "quote",
                "description": "Quote the shipping cost of a parcel.",
                "parameters": {
                    "$defs": {
                        "Address": {
                            "description": "A postal address.",
                            "type": "object",
                            "properties": {
                                "street": {"type": "string"},
                                "city": {"type": "string"},
                                "country": {"type": "string", "default": "FR"},
                            },
                            "required": ["street", "city"],
                        },
                        "Priority": {"type": "string", "enum": ["low", "high"]},
                    },
                    "type": "object",
                    "properties": {
                        "address": {
                            "$ref": "#/$defs/Address",
                            "description": "Where the parcel goes.",
                        },
                        "weight_kg": {
                            "type": "number",
                            "description": "The parcel's weight in kilograms.",
                        },
                        "priority": {
                            "$ref": "#/$defs/Priority",
                            "default": "low",
                            "description": "How fast it must arrive.",
                        },
                        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
                    },
                    "required": ["address", "weight_kg"],
                    "additionalProperties": False,
                },
            },
        },
        {
            "type": "function",
            "function": {
                "name": "search",
                "description": "Full-text search of the help center",
                "parameters": {
                    "type": "object",
                    "properties": {"query": {"type": "string"}},
                    "required": ["query"],
                },
            },
        },
    ]


TOOL_STEP = """\
version: 1
name: tool-step
inputs:
  weight: {type: number}
  city: {type: string, default: Lyon}
defaults: {model: gpt-4o-mini}
steps:
  quote:
    type: tool
    function: tests.tool_fixtures:shipping_quote
    args:
      address: {street: 1 rue Haute, city: "{{ inputs.city }}"}
      weight_kg: "{{ inputs.weight }}"
      priority: high
  tell:
    type: chat
    prompt: "Tell the customer: {{ steps.quote.output | tojson }}"
outputs:
  quote: "{{ steps.quote.output }}"
  told: "{{ steps.tell.output }}"
"""


def test_tool_step_renders_args_and_returns_the_pydantic_model_as_json(server, tmp_path):
    res = flowrun("run", make_flow(tmp_path, TOOL_STEP), "-i", "weight=2.5", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    quote = {"amount": 20.0, "currency": "EUR", "express": True}
    assert doc["outputs"]["quote"] == quote
    step = doc["steps"]["quote"]
    assert step["output"] == quote
    (call,) = step["tool_calls"]
    assert call["name"] == "tests.tool_fixtures:shipping_quote"
    assert call["arguments"] == {
        "address": {"street": "1 rue Haute", "city": "Lyon"},
        "weight_kg": 2.5,
        "priority": "high",
    }
    assert call["result"] == quote
    assert call["duration_s"] >= 0
    (request,) = server.requests_to("/chat/completions")
    assert (
        request.last_user_text
        == 'Tell the customer: {"amount": 20.0, "currency": "EUR", "express": true}'
    )


def test_tool_step_argument_of_the_wrong_type_is_an_error_naming_step_and_argument(
    server, tmp_path
):
    untyped = TOOL_STEP.replace("weight: {type: number}", "weight: {type: string}")
    res = flowrun("run", make_flow(tmp_path, untyped), "-i", "weight=heavy", "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["failed_step"] == "quote"
    assert doc["steps"]["quote"]["error"] == (
        "arguments do not fit tests.tool_fixtures:shipping_quote: argument 'weight_kg': "
        "Input should be a valid number, unable to parse string as a number"
    )
    assert "tell" not in doc["steps"]
    assert server.requests == []


ECHO_TYPES = """\
version: 1
name: as-given
inputs:
  count: {type: string}
  text: {type: array}
steps:
  show:
    type: tool
    function: tests.tool_fixtures:show_types
    check_args: false
    args:
      count: "{{ inputs.count }}"
      text: "{{ inputs.text }}"
"""


def test_check_args_false_passes_what_a_hint_refuses_and_converts_what_fits(server, tmp_path):
    """check_args: false (what `convert promptflow` writes): "3" still becomes the int its
    hint asks for, and a list its str hint refuses is passed as it is, as promptflow does;
    with the default, the same list fails the step naming the argument."""
    flow = make_flow(tmp_path, ECHO_TYPES)
    args = ("-i", "count=3", "-i", 'text=["a", "b"]', "--json")
    res = flowrun("run", flow, *args)
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["steps"]["show"]["output"] == "count int 3; text list ['a', 'b']"
    flow.write_text(ECHO_TYPES.replace("    check_args: false\n", ""))
    res = flowrun("run", flow, *args)
    assert res.code == 1
    assert "argument 'text': Input should be a valid string" in json.loads(res.stdout)["error"]


SYNC_AND_ASYNC = '''
import asyncio
import threading
import time

chat_seen = threading.Event()


def wait_for_chat() -> str:
    """Blocks its thread until the server has received the other step's chat request."""
    return "saw the chat request" if chat_seen.wait(10) else "the event loop was blocked"


async def add_later(a: int, b: int) -> int:
    await asyncio.sleep(0.01)
    return a + b


def sleepy(seconds: float) -> str:
    time.sleep(seconds)
    return "done"


async def async_sleepy(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "done"


def broken(x: int) -> int:
    raise ValueError(f"cannot handle {x}")
'''

NOT_BLOCKING = """\
version: 1
name: not-blocking
defaults: {model: gpt-4o-mini}
steps:
  wait:
    type: tool
    function: TOOLS:wait_for_chat
  ask:
    type: chat
    prompt: independent question
  sum:
    type: tool
    function: TOOLS:add_later
    args: {a: 2, b: "{{ 40 }}"}
outputs:
  wait: "{{ steps.wait.output }}"
  ask: "{{ steps.ask.output }}"
  sum: "{{ steps.sum.output }}"
"""


def test_a_blocking_sync_tool_runs_in_a_thread_while_other_steps_proceed(server, tmp_path):
    wf = load_workflow(make_flow(tmp_path, NOT_BLOCKING, SYNC_AND_ASYNC))
    chat_seen = module_of(wf, "wait_for_chat")["chat_seen"]

    def answer(req):
        chat_seen.set()
        return Reply(content="answered")

    server.add(answer)
    result = run_workflow(wf, store=False)
    assert result.status == "succeeded", result.error
    assert result.outputs == {"wait": "saw the chat request", "ask": "answered", "sum": 42}


TIMEOUTS = """\
version: 1
name: timeouts
steps:
  slow:
    type: tool
    function: TOOLS:{function}
    args: {{seconds: 3}}
    timeout_s: 0.2
"""


def test_tool_step_timeout_fails_the_step_for_sync_and_async_functions(tmp_path):
    for function in ("async_sleepy", "sleepy"):
        folder = tmp_path / function
        folder.mkdir()
        flow = make_flow(folder, TIMEOUTS.format(function=function), SYNC_AND_ASYNC)
        result = run_workflow(flow, store=False)
        module = next(folder.glob("tools_*.py")).stem
        assert result.status == "failed"
        assert (
            result.error == f"step 'slow' failed: tool '{module}:{function}' timed out after 0.2s"
        )
        assert result.steps["slow"].duration_s < 2


def test_a_tool_step_that_raises_fails_the_run_with_the_exception(tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: raises
        steps:
          bad: {type: tool, function: "TOOLS:broken", args: {x: 7}}
        """,
        SYNC_AND_ASYNC,
    )
    res = flowrun("run", flow)
    assert res.code == 1
    module = next(tmp_path.glob("tools_*.py")).stem
    assert f"step 'bad' failed: {module}:broken raised ValueError: cannot handle 7" in res.stderr
    assert "Traceback" not in res.output


def test_a_tool_step_returning_something_that_is_not_json_fails_clearly(tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: not-json
        steps:
          obj: {type: tool, function: "TOOLS:make"}
        """,
        "class Thing:\n    pass\n\n\ndef make():\n    return Thing()\n",
    )
    result = run_workflow(flow, store=False)
    module = next(tmp_path.glob("tools_*.py")).stem
    assert result.error == (
        f"step 'obj' failed: {module}:make returned a Thing, which is not JSON-serialisable"
    )


# --- validation errors (exit 2, FILE:LINE:COL) ---------------------------------------

BAD_TOOLS = """
class Connection:
    pass


def needs_connection(query: str, conn: Connection) -> str:
    return query


def fine(text: str, count: int = 1) -> str:
    return text * count
"""


def validate(tmp_path, workflow: str, code: str | None = BAD_TOOLS) -> tuple[int, list[str], str]:
    flow = make_flow(tmp_path, workflow, code)
    res = flowrun("validate", flow)
    module = next(iter(tmp_path.glob("tools_*.py")), None)
    lines = [
        line.replace(str(flow), "wf.yaml").replace(module.stem if module else "\0", "TOOLS")
        for line in res.stderr.splitlines()
    ]
    return res.code, lines, res.stdout


def test_unknown_tool_in_a_chat_step_is_reported_with_its_line(tmp_path):
    code, lines, _ = validate(
        tmp_path,
        """\
        version: 1
        name: unknown-tool
        defaults: {model: gpt-4o-mini}
        tools:
          fine: {function: "TOOLS:fine"}
        steps:
          ask:
            type: chat
            prompt: hi
            tools: [fine, fien]
        """,
    )
    assert code == 2
    assert lines == [
        "wf.yaml:10:19: step 'ask' uses unknown tool 'fien' (did you mean 'fine'?) (declare it under tools:)"
    ]


def test_tools_that_cannot_be_imported_are_reported_with_their_lines(tmp_path):
    code, lines, _ = validate(
        tmp_path,
        """\
        version: 1
        name: bad-imports
        tools:
          missing_module: {function: "no_such_module_xyz:find"}
          missing_attr: {function: "TOOLS:nope"}
          not_a_reference: {function: "just_a_name"}
        steps:
          run:
            type: tool
            function: TOOLS:also_nope
        """,
    )
    assert code == 2
    # (each message may go on with a hint)
    for line, expected in zip(
        lines,
        [
            "wf.yaml:4:30: cannot import 'no_such_module_xyz:find': No module named 'no_such_module_xyz'",
            "wf.yaml:5:28: cannot import 'TOOLS:nope': module 'TOOLS' has no attribute 'nope'",
            "wf.yaml:6:31: 'just_a_name' is not of the form module:callable",
            "wf.yaml:10:15: cannot import 'TOOLS:also_nope': module 'TOOLS' has no attribute 'also_nope'",
        ],
        strict=True,
    ):
        assert line.startswith(expected), line


def test_a_signature_without_a_json_schema_is_a_validation_error(tmp_path):
    code, lines, _ = validate(
        tmp_path,
        """\
        version: 1
        name: bad-signature
        defaults: {model: gpt-4o-mini}
        tools:
          query_db:
            function: TOOLS:needs_connection
          with_schema:
            function: TOOLS:needs_connection
            parameters: {type: object, properties: {query: {type: string}}}
        steps:
          ask: {type: chat, prompt: hi, tools: [query_db, with_schema]}
          direct:
            type: tool
            function: TOOLS:needs_connection
            args: {query: x}
        """,
    )
    assert code == 2
    why = (
        "parameter 'conn' has type Connection, which has no JSON schema; annotate it with a "
        "JSON-compatible type (str, int, list[str], a pydantic model, ...) or declare the "
        "tool's parameters: explicitly"
    )
    assert lines == [
        f"wf.yaml:6:15: tool 'query_db' (TOOLS:needs_connection): {why}",
        f"wf.yaml:14:15: step 'direct' (TOOLS:needs_connection): {why}",
    ]


def test_tool_step_argument_names_are_checked_against_the_signature(tmp_path):
    code, lines, _ = validate(
        tmp_path,
        """\
        version: 1
        name: bad-args
        steps:
          extra:
            type: tool
            function: TOOLS:fine
            args:
              text: hi
              cuont: 2
          missing:
            type: tool
            function: TOOLS:fine
            args: {count: 2}
          none_at_all:
            type: tool
            function: TOOLS:fine
        """,
    )
    assert code == 2
    assert lines == [
        "wf.yaml:9:7: step 'extra': TOOLS:fine has no parameter 'cuont' (did you mean 'count'?)",
        "wf.yaml:13:5: step 'missing': missing argument(s) for TOOLS:fine: text",
        "wf.yaml:14:3: step 'none_at_all': missing argument(s) for TOOLS:fine: text",
    ]


def test_an_explicit_parameters_schema_must_be_a_valid_object_schema(tmp_path):
    code, lines, _ = validate(
        tmp_path,
        """\
        version: 1
        name: bad-parameters
        tools:
          a:
            function: TOOLS:fine
            parameters: {type: objekt}
          b:
            function: TOOLS:fine
            parameters: {type: string}
        steps:
          s: {type: tool, function: "TOOLS:fine", args: {text: x}}
        """,
    )
    assert code == 2
    assert lines[0].startswith("wf.yaml:6:17: tool 'a': parameters is not a valid JSON schema: ")
    assert lines[1:] == ["wf.yaml:9:17: tool 'b': parameters must be a schema of type object"]


# --- modules next to the workflow file --------------------------------------------------------


def _tool_flow(folder, function: str):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "wf.yaml"
    path.write_text(
        f"version: 1\nname: t\nsteps:\n  s: {{type: tool, function: '{function}'}}\n",
        encoding="utf-8",
    )
    return path


def test_same_named_modules_next_to_different_workflows_do_not_collide(tmp_path):
    one = _tool_flow(tmp_path / "p1", "helpers:first")
    two = _tool_flow(tmp_path / "p2", "helpers:second")
    (tmp_path / "p1" / "helpers.py").write_text("def first() -> str:\n    return 'one'\n")
    (tmp_path / "p2" / "helpers.py").write_text("def second() -> str:\n    return 'two'\n")
    res = flowrun("validate", one, two)
    assert (res.code, res.stderr) == (0, "")
    assert run_workflow(one, store=False).steps["s"].output == "one"
    assert run_workflow(two, store=False).steps["s"].output == "two"


def test_a_module_named_like_the_standard_library_is_the_one_next_to_the_workflow(tmp_path):
    flow = _tool_flow(tmp_path, "email:send")
    (tmp_path / "email.py").write_text("def send() -> str:\n    return 'sent'\n")
    assert run_workflow(flow, store=False).steps["s"].output == "sent"
    import email

    assert not hasattr(email, "send")  # the standard library's email is untouched


def test_a_local_module_imports_its_siblings_pickles_and_packages_work(tmp_path):
    import pickle

    (tmp_path / "shared_math_zz.py").write_text("def double(x: int) -> int:\n    return 2 * x\n")
    (tmp_path / "uses_sibling.py").write_text(
        "from shared_math_zz import double\n\ndef four() -> int:\n    return double(2)\n"
    )
    (tmp_path / "pkgzz").mkdir()
    (tmp_path / "pkgzz" / "__init__.py").write_text("")
    (tmp_path / "pkgzz" / "inner.py").write_text(
        "from . import helper\n\ndef five() -> int:\n    return helper.FIVE\n"
    )
    (tmp_path / "pkgzz" / "helper.py").write_text("FIVE = 5\n")
    flow = tmp_path / "wf.yaml"
    flow.write_text(
        "version: 1\nname: t\nsteps:\n"
        "  a: {type: tool, function: 'uses_sibling:four'}\n"
        "  b: {type: tool, function: 'pkgzz.inner:five'}\n"
        "  c: {type: tool, function: 'pkgzz.nope:five'}\n"
    )
    res = flowrun("validate", flow)
    assert res.stderr == (
        f"{flow}:6:29: cannot import 'pkgzz.nope:five': No module named 'pkgzz.nope' "
        "(put pkgzz/nope.py next to the workflow file, or install the package that provides it)\n"
    )
    flow.write_text(flow.read_text().rsplit("  c:", 1)[0])
    wf = load_workflow(flow)
    four = wf.functions["uses_sibling:four"]
    assert four() == 4 and wf.functions["pkgzz.inner:five"]() == 5
    assert pickle.loads(pickle.dumps(four)) is four
    again = load_workflow(flow)  # loaded once, not again for every load
    assert again.functions["uses_sibling:four"] is four


QUITTERS = """\
import asyncio
import sys


def quit_now(code: int = 3):
    sys.exit(code)


async def async_quit(code: int = 3):
    await asyncio.sleep(0)
    sys.exit(code)
"""


def test_a_tool_step_that_calls_sys_exit_fails_the_step_not_the_process(server, tmp_path):
    for function, extra in (("quit_now", ""), ("async_quit", ", timeout_s: 5")):
        folder = tmp_path / function
        folder.mkdir()
        flow = make_flow(
            folder,
            f"""\
            version: 1
            name: quits
            steps:
              q: {{type: tool, function: "TOOLS:{function}", args: {{code: 3}}{extra}}}
            """,
            QUITTERS,
        )
        module = next(folder.glob("tools_*.py")).stem
        res = flowrun("run", flow, "--json")
        assert res.code == 1, res.stderr
        doc = json.loads(res.stdout)
        message = f"tool '{module}:{function}' called sys.exit(3)"
        assert doc["status"] == "failed"
        assert doc["error"] == f"step 'q' failed: {message}"
        assert doc["steps"]["q"]["tool_calls"][0]["error"] == message
        shown = json.loads(flowrun("runs", "show", doc["run_id"], "--json").stdout)
        assert shown["status"] == "failed"


def test_a_function_with_kwargs_gets_the_extra_arguments(server, tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: kwargs
        steps:
          t: {type: tool, function: "TOOLS:label", args: {text: hi, extra: 1, colour: red}}
        outputs:
          out: "{{ steps.t.output }}"
        """,
        "def label(text: str, times: int = 1, **labels) -> dict:\n"
        "    return {'text': text * times, 'labels': labels}\n",
    )
    assert flowrun("validate", flow).code == 0
    res = flowrun("run", flow, "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["outputs"]["out"] == {
        "text": "hi",
        "labels": {"extra": 1, "colour": "red"},
    }


def test_tool_step_records_of_a_foreach_name_their_item(tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: each
        steps:
          t: {type: tool, foreach: [a, b], function: "TOOLS:double", args: {text: "{{ item }}"}}
        """,
        "def double(text: str) -> str:\n    return text * 2\n",
    )
    result = run_workflow(flow, store=False)
    assert result.steps["t"].output == ["aa", "bb"]
    calls = result.steps["t"].tool_calls
    assert sorted((c["item"], c["result"]) for c in calls) == [(0, "aa"), (1, "bb")]
