"""``when`` (skipping steps) and ``foreach`` (bounded fan-out in input order)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from flowrun import run_workflow
from flowrun.testing import RecordedRequest, Reply
from tests.flow_files import make_flow
from tests.helpers import flowrun

WHEN = """\
version: 1
name: when
inputs:
  urgent: {type: string}
defaults: {model: gpt-4o-mini}
steps:
  page:
    type: chat
    when: "{{ inputs.urgent }}"
    prompt: Page the on-call engineer.
  report:
    type: chat
    prompt: "Report. Page: {{ steps.page.output | tojson }}, skipped: {{ steps.page.skipped }}"
outputs:
  page: "{{ steps.page.output }}"
  report: "{{ steps.report.output }}"
"""


@pytest.mark.parametrize("falsy", ["false", "no", "0", "", "None", "off"])
def test_a_falsy_when_skips_the_step_and_dependants_see_null(server, tmp_path, falsy):
    res = flowrun("run", make_flow(tmp_path, WHEN), "-i", f"urgent={falsy}", "--json")
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["steps"]["page"]["status"] == "skipped"
    assert doc["steps"]["page"]["output"] is None
    assert doc["steps"]["page"]["calls"] == 0
    assert doc["outputs"] == {"page": None, "report": "echo: Report. Page: null, skipped: True"}
    (request,) = server.requests_to("/chat/completions")  # only the report step called
    assert request.last_user_text == "Report. Page: null, skipped: True"


@pytest.mark.parametrize("truthy", ["true", "yes", "1", "sev1"])
def test_a_truthy_when_runs_the_step(server, tmp_path, truthy):
    server.add(Reply(content="paged"), match="Page the on-call")
    result = run_workflow(make_flow(tmp_path, WHEN), {"urgent": truthy}, store=False)
    assert result.status == "succeeded", result.error
    assert result.outputs == {
        "page": "paged",
        "report": 'echo: Report. Page: "paged", skipped: False',
    }


def test_when_on_a_native_value_from_an_extract_step(server, tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: when-native
        defaults: {model: gpt-4o-mini}
        steps:
          classify:
            type: extract
            prompt: Is it urgent?
            schema: {type: object, properties: {urgent: {type: boolean}}, required: [urgent]}
          escalate:
            type: chat
            when: "{{ steps.classify.output.urgent }}"
            prompt: escalate now
        """,
    )
    server.add(Reply(json={"urgent": False}))
    result = run_workflow(flow, store=False)
    assert result.status == "succeeded", result.error
    assert result.steps["escalate"].skipped
    assert len(server.requests) == 1


FOREACH = """\
version: 1
name: foreach
inputs:
  texts: {{type: array}}
defaults: {{model: gpt-4o-mini}}
steps:
  each:
    type: chat
    foreach: "{{{{ inputs.texts }}}}"
    prompt: "item {{{{ index }}}}: {{{{ item }}}}"
{extra}
outputs:
  each: "{{{{ steps.each.output }}}}"
"""


class Concurrency:
    """A responder that holds each request ``hold`` seconds and counts how many overlap.

    With ``expected``, the first requests also wait (up to 10 s) until that many are in at
    once, so a loaded machine that is slow to send them is not counted as a lower bound.
    """

    def __init__(
        self, hold: float, delays: dict[int, float] | None = None, expected: int = 0
    ) -> None:
        self.hold = hold
        self.delays = delays or {}
        self.lock = threading.Lock()
        self.now = 0
        self.max = 0
        self.expected = expected
        self.full = threading.Event()

    def __call__(self, req: RecordedRequest) -> Reply:
        index = int(req.last_user_text.split(":")[0].split()[-1])
        with self.lock:
            self.now += 1
            self.max = max(self.max, self.now)
            if self.now >= self.expected:
                self.full.set()
        self.full.wait(10)
        time.sleep(self.delays.get(index, self.hold))
        with self.lock:
            self.now -= 1
        return Reply(content=f"done {req.last_user_text}")


def test_foreach_output_is_in_input_order_even_when_items_finish_out_of_order(server, tmp_path):
    items = ["alpha", "beta", "gamma", "delta"]
    slow_first = Concurrency(0, delays={0: 0.4, 1: 0.3, 2: 0.2, 3: 0.0})
    server.add(slow_first, times=None)
    res = flowrun(
        "run",
        make_flow(tmp_path, FOREACH.format(extra="")),
        "-i",
        f"texts={json.dumps(items)}",
        "--json",
    )
    assert res.code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["outputs"]["each"] == [f"done item {i}: {t}" for i, t in enumerate(items)]
    finished = sorted(server.requests_to("/chat/completions"), key=lambda r: r.replied_at or 0)
    assert [r.last_user_text for r in finished][0] == "item 3: delta"
    assert doc["steps"]["each"]["calls"] == 4
    assert doc["cost"]["calls"] == 4


@pytest.mark.parametrize(("bound", "items", "expected"), [(3, 10, 3), (None, 20, 8)])
def test_foreach_never_runs_more_items_at_once_than_max_concurrency(
    server, tmp_path, bound, items, expected
):
    counter = Concurrency(0.1, expected=expected)
    server.add(counter, times=None)
    extra = f"    max_concurrency: {bound}" if bound else ""
    result = run_workflow(
        make_flow(tmp_path, FOREACH.format(extra=extra)),
        {"texts": [f"t{i}" for i in range(items)]},
        store=False,
    )
    assert result.status == "succeeded", result.error
    assert len(result.outputs["each"]) == items
    assert counter.max == expected


def test_a_failed_item_fails_the_step_and_names_its_index(server, tmp_path):
    server.add(Reply(status=400, error="bad item"), match="item 2:")
    res = flowrun(
        "run",
        make_flow(tmp_path, FOREACH.format(extra="")),
        "-i",
        'texts=["a", "b", "c", "d"]',
        "--json",
    )
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["steps"]["each"]["status"] == "failed"
    assert doc["steps"]["each"]["error"] == "item 2: API error 400: bad item"
    assert "step 'each' failed: item 2: API error 400: bad item" in res.stderr


def test_foreach_must_get_a_list(server, tmp_path):
    result = run_workflow(
        make_flow(tmp_path, FOREACH.format(extra="").replace("type: array", "type: string")),
        {"texts": "abc"},
        store=False,
    )
    assert result.error == "step 'each' failed: foreach must give a list, got str: 'abc'"
    assert server.requests == []


def test_foreach_over_a_tool_step_and_a_step_that_reads_the_list(server, tmp_path):
    flow = make_flow(
        tmp_path,
        """\
        version: 1
        name: foreach-tool
        inputs:
          words: {type: array}
        defaults: {model: gpt-4o-mini}
        steps:
          lengths:
            type: tool
            foreach: "{{ inputs.words }}"
            function: TOOLS:describe
            args: {word: "{{ item }}", position: "{{ index }}"}
          total:
            type: chat
            prompt: "{{ steps.lengths.output | map(attribute='length') | sum }}"
        outputs:
          lengths: "{{ steps.lengths.output }}"
        """,
        "def describe(word: str, position: int) -> dict:\n"
        "    return {'word': word, 'position': position, 'length': len(word)}\n",
    )
    result = run_workflow(flow, {"words": ["a", "bcd", "ef"]}, store=False)
    assert result.status == "succeeded", result.error
    assert result.outputs["lengths"] == [
        {"word": "a", "position": 0, "length": 1},
        {"word": "bcd", "position": 1, "length": 3},
        {"word": "ef", "position": 2, "length": 2},
    ]
    assert [c["arguments"] for c in result.steps["lengths"].tool_calls] == [
        {"word": "a", "position": 0},
        {"word": "bcd", "position": 1},
        {"word": "ef", "position": 2},
    ]
    (request,) = server.requests_to("/chat/completions")
    assert request.last_user_text == "6"
