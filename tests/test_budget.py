"""The budget cap: calls whose worst case could pass it are refused before any request."""

from __future__ import annotations

import json

import pytest

from flowrun import load_workflow, run_workflow
from flowrun.testing import Reply
from tests.helpers import flowrun
from tests.run_helpers import write

# gpt-4o: $10 per 1M output tokens, so 1000 completion tokens are $0.01 at worst
ONE_STEP = """\
version: 1
name: capped
defaults:
  model: gpt-4o
  max_completion_tokens: 1000
budget:
  max_cost_usd: 0.005
steps:
  answer:
    type: chat
    prompt: "Say hi"
outputs:
  answer: "{{ steps.answer.output }}"
"""

TWO_CAPPED = """\
version: 1
name: capped-twice
defaults:
  model: gpt-4o
  max_completion_tokens: 1000
budget:
  max_cost_usd: 0.015
steps:
  answer:
    type: chat
    prompt: "Say hi"
  more:
    type: chat
    prompt: "Again: {{ steps.answer.output }}"
outputs:
  more: "{{ steps.more.output }}"
"""

FOUR_PARALLEL = """\
version: 1
name: four
defaults:
  model: gpt-4o
  max_completion_tokens: 1000
budget:
  max_cost_usd: 0.025
steps:
  a: {type: chat, prompt: "part a"}
  b: {type: chat, prompt: "part b"}
  c: {type: chat, prompt: "part c"}
  d: {type: chat, prompt: "part d"}
"""


def test_a_call_that_could_pass_the_cap_is_never_made(server, tmp_path):
    wf = write(tmp_path, ONE_STEP)
    res = flowrun("run", wf, "--json")
    assert res.code == 1
    assert server.requests == []
    doc = json.loads(res.stdout)
    assert doc["status"] == "failed" and doc["failed_step"] == "answer"
    assert "no call was made" in doc["error"]
    assert doc["error"].startswith("step 'answer' failed: budget: the call could cost up to $0.01")
    assert doc["error"].count("'answer'") == 1  # the step is named once
    assert "could take the run past its budget of $0.005" in res.stderr
    assert "Raise budget.max_cost_usd or --max-cost" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_refused_foreach_item_is_named_by_its_index(server, tmp_path):
    wf = write(
        tmp_path,
        ONE_STEP.replace(
            '    prompt: "Say hi"', '    foreach: [1, 2]\n    prompt: "Say hi {{ item }}"'
        ),
    )
    result = run_workflow(load_workflow(wf))
    assert result.status == "failed"
    assert result.error.startswith(
        "step 'answer' failed: item 0: budget: the call could cost up to"
    )
    assert server.requests == []


def test_max_cost_flag_overrides_the_file(server, tmp_path):
    wf = write(tmp_path, ONE_STEP)
    res = flowrun("run", wf, "--max-cost", "0.02")
    assert res.code == 0, res.stderr
    assert len(server.requests) == 1

    uncapped = write(tmp_path, ONE_STEP.replace("budget:\n  max_cost_usd: 0.005\n", ""), "u.yaml")
    res = flowrun("run", uncapped, "--max-cost", "0.001")
    assert res.code == 1
    assert "its budget of $0.001" in res.stderr
    assert len(server.requests) == 1


def test_max_cost_must_be_positive(server, tmp_path):
    res = flowrun("run", write(tmp_path, ONE_STEP), "--max-cost", "0")
    assert res.code == 2
    assert "--max-cost" in res.stderr
    assert server.requests == []


@pytest.mark.parametrize("value", ["nan", "NaN", "inf", "-inf", "-0.5", "1e400"])
def test_max_cost_that_is_not_a_finite_positive_number_is_refused(server, tmp_path, value):
    """NaN compares false with every cost: taken as a budget it would let every call through."""
    wf = write(tmp_path, FOUR_PARALLEL)
    for command in (
        ("run", wf),
        ("run", wf, "--batch", _records(tmp_path), "--output", tmp_path / "o.jsonl"),
    ):
        res = flowrun(*command, "--max-cost", value)
        assert res.code == 2, res.output
        assert res.stderr.startswith("error: Invalid value for '--max-cost'")
        assert len(res.stderr.strip().splitlines()) <= 2 and "Traceback" not in res.stderr
    assert server.requests == []


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 0])
def test_the_api_refuses_a_max_cost_that_is_no_budget(server, tmp_path, value):
    from flowrun.errors import UsageError

    with pytest.raises(UsageError, match="not a budget"):
        run_workflow(load_workflow(write(tmp_path, FOUR_PARALLEL)), max_cost=value)
    assert server.requests == []


def _records(tmp_path):
    path = tmp_path / "records.jsonl"
    path.write_text('{"x": 1}\n', encoding="utf-8")
    return path


def test_concurrent_steps_reserve_atomically(server, tmp_path):
    wf = write(tmp_path, FOUR_PARALLEL)
    server.default = lambda req: Reply(content="done", latency=0.2)
    res = flowrun("run", wf, "--json")
    assert res.code == 1
    assert len(server.requests) == 2  # each reserves ~$0.01; only two fit under $0.025
    steps = json.loads(res.stdout)["steps"]
    assert sorted(s["status"] for s in steps.values()) == [
        "failed",
        "failed",
        "succeeded",
        "succeeded",
    ]
    assert all("no call was made" in s["error"] for s in steps.values() if s["status"] == "failed")


def test_budget_through_the_api(server, tmp_path):
    wf = load_workflow(write(tmp_path, ONE_STEP))
    result = run_workflow(wf, max_cost=0.001)
    assert result.status == "failed"
    assert "budget" in result.error
    assert server.requests == []


def test_spent_money_counts_and_resume_can_raise_the_cap(server, tmp_path):
    wf = write(tmp_path, TWO_CAPPED)
    # the first reply really uses 900 completion tokens ($0.009); the second could use 1000
    server.add(Reply(content="long", usage={"completion_tokens": 900}), match="Say hi")
    res = flowrun("run", wf, "--json")
    assert res.code == 1
    doc = json.loads(res.stdout)
    assert doc["steps"]["answer"]["status"] == "succeeded"
    assert doc["failed_step"] == "more"
    assert "spent $0.009" in doc["error"]
    assert len(server.requests) == 1

    resumed = flowrun("resume", doc["run_id"], "--max-cost", "0.05", "--json")
    assert resumed.code == 0, resumed.stderr
    assert len(server.requests) == 2
    assert json.loads(resumed.stdout)["outputs"] == {"more": "echo: Again: long"}


UNPRICED = """\
version: 1
name: local
defaults:
  model: my-local-model
  max_completion_tokens: 100
steps:
  one:
    type: chat
    prompt: "hello"
  two:
    type: chat
    model: another-local-model
    prompt: "hello again"
  three:
    type: chat
    model: gpt-4o-mini
    prompt: "priced"
"""


def test_unpriced_models_under_a_budget_are_a_validation_error(server, tmp_path):
    wf = write(tmp_path, UNPRICED + "budget:\n  max_cost_usd: 1\n")
    res = flowrun("run", wf)
    assert res.code == 2
    assert res.stderr.splitlines() == [
        f"{wf}:4:10: model my-local-model (step 'one') has no price, so the budget "
        "(budget.max_cost_usd) cannot be kept: add it to a price file (--prices or "
        "FLOWRUN_PRICES) or use a priced model",
        f"{wf}:12:12: model another-local-model (step 'two') has no price, so the budget "
        "(budget.max_cost_usd) cannot be kept: add it to a price file (--prices or "
        "FLOWRUN_PRICES) or use a priced model",
    ]
    assert server.requests == []
    assert json.loads(flowrun("runs", "list", "--json").stdout) == []


def test_unpriced_model_with_max_cost_flag_and_a_price_file(server, tmp_path):
    wf = write(tmp_path, UNPRICED)
    assert flowrun("run", wf).code == 0  # no budget: unpriced is reported, not refused
    res = flowrun("run", wf, "--max-cost", "1")
    assert res.code == 2
    assert f"{wf}:4:10: model my-local-model" in res.stderr and "(--max-cost 1)" in res.stderr

    prices = tmp_path / "prices.json"
    prices.write_text(
        json.dumps(
            {
                "my-local-model": {"input": 0.1, "output": 0.1},
                "another-local-model": {"input": 0.1, "output": 0.1},
            }
        )
    )
    res = flowrun("run", wf, "--max-cost", "1", "--prices", prices, "--json")
    assert res.code == 0, res.stderr
    assert json.loads(res.stdout)["cost"]["unpriced_models"] == []


def test_a_budget_needs_a_known_output_limit(server, tmp_path):
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"my-local-model": {"input": 0.1, "output": 0.1}}))
    text = 'version: 1\nname: x\nsteps:\n  one:\n    type: chat\n    model: my-local-model\n    prompt: "hi"\n'
    wf = write(tmp_path, text)
    res = flowrun("run", wf, "--max-cost", "1", "--prices", prices)
    assert res.code == 2
    assert res.stderr.strip() == (
        f"{wf}:4:3: step 'one': the output limit of my-local-model is unknown, so the budget "
        "(--max-cost 1) cannot be kept: set max_completion_tokens on the step or under defaults"
    )
    wf.write_text(text + "    max_completion_tokens: 10\n")
    assert flowrun("run", wf, "--max-cost", "1", "--prices", prices).code == 0
    assert len(server.requests) == 1
