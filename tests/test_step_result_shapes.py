"""A step's ``--json`` entry and what templates see as ``steps.<id>`` are read straight from
its call when it made one (most steps); they must say exactly what the rule over any number
of calls says: usage summed, cost unknown if a call is unpriced, cached only if every
replied call was, and so on."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from flowrun.results import CallRecord, StepResult, Usage


def general_json(step: StepResult) -> dict[str, Any]:
    """The rule over any number of calls, as the ``--json`` output documents it."""
    calls = step.calls
    priced = all(c.cost_usd is not None for c in calls)
    replied = [c for c in calls if not c.failed]
    data: dict[str, Any] = {
        "status": step.status,
        "output": step.output,
        "model": step.model,
        "usage": step.usage.to_dict(),
        "cost_usd": round(sum(c.cost_usd or 0.0 for c in calls), 8) if priced else None,
        "duration_s": round(step.duration_s, 4),
        "calls": len(replied),
        "retries": sum(c.retries for c in calls),
    }
    if replied and all(c.cached for c in replied):
        data["cached"] = True
    if any(c.approximate for c in calls):
        data["approximate_usage"] = True
    if any(c.mock for c in calls):
        data["mock"] = True
    for key in ("finish_reason", "tool_calls", "error", "warnings"):
        if getattr(step, key):
            data[key] = getattr(step, key)
    return data


def general_view(step: StepResult) -> dict[str, Any]:
    calls = step.calls
    priced = all(c.cost_usd is not None for c in calls)
    return {
        "output": step.output,
        "usage": step.usage.to_dict(),
        "finish_reason": step.finish_reason,
        "skipped": step.skipped,
        "status": step.status,
        "tool_calls": step.tool_calls,
        "cost_usd": sum(c.cost_usd or 0.0 for c in calls) if priced else None,
        "model": step.model,
    }


FLAGS = ("cached", "failed", "approximate", "mock")


@pytest.mark.parametrize("cost", [None, 0.0, 0.000123456789, 2.5])
@pytest.mark.parametrize("flags", list(itertools.product([False, True], repeat=len(FLAGS))))
def test_a_one_call_step_reads_as_the_rule_over_its_calls_says(cost, flags) -> None:
    call = CallRecord(
        "gpt-4o-mini",
        Usage(1234, 56, 7, 8),
        cost,
        duration_s=0.5,
        retries=2,
        finish_reason="stop",
        **dict(zip(FLAGS, flags, strict=True)),
    )
    step = StepResult(
        "a",
        "failed" if call.failed else "succeeded",
        output={"x": 1},
        model="gpt-4o-mini",
        calls=[call],
        finish_reason="stop",
        error="boom" if call.failed else None,
        warnings=["w"],
        duration_s=1.234567,
        tool_calls=[{"name": "t"}],
    )
    assert step.to_json() == general_json(step)
    assert step.template_view() == general_view(step)
    assert type(step.to_json()["cost_usd"]) is type(general_json(step)["cost_usd"])


def test_steps_of_no_call_and_of_several_calls_read_the_same_way() -> None:
    calls = [
        CallRecord("m", Usage(10, 2), 0.5, retries=1),
        CallRecord("m", Usage(0, 0), None, failed=True, retries=3),
        CallRecord("m", Usage(5, 1, 2, 0), 0.25, cached=True),
    ]
    for some in ([], calls[:1], calls, calls[1:]):
        step = StepResult("a", "succeeded", output="o", calls=list(some), duration_s=0.1)
        assert step.to_json() == general_json(step)
        assert step.template_view() == general_view(step)


def test_a_step_comes_back_from_pickle_whole() -> None:
    """A Batch API record's completed steps wait pickled (in memory or in a temporary file)
    between its runs: every field comes back, those left out of ``==`` too."""
    import pickle

    call = CallRecord(
        "gpt-4o-mini", Usage(11, 7, 3, 2), 0.00012, 0.5, 2, "stop", cached=True, batch=True,
        approximate=True,
    )  # fmt: skip
    step = StepResult(
        id="a", status="succeeded", output={"x": [1, "two"]}, model="gpt-4o-mini",
        calls=[call, CallRecord("gpt-4o", Usage(), None, failed=True, mock=True)],
        tool_calls=[{"name": "f"}], finish_reason="stop", error=None, warnings=["w"],
        duration_s=1.25, transcript=[{"kind": "chat"}], kept_calls=1, stored_transcript="[]",
    )  # fmt: skip
    back = pickle.loads(pickle.dumps(step, protocol=pickle.HIGHEST_PROTOCOL))
    assert vars(back) == vars(step)
    assert [vars(c) for c in back.calls] == [vars(c) for c in step.calls]
    assert type(back.calls[0].usage) is Usage and vars(back.calls[0].usage) == vars(call.usage)
