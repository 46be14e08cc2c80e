"""The ``tool`` step: call a Python function with rendered arguments; no model involved."""

from __future__ import annotations

import time
from typing import Any

from flowrun.engine.steps.base import StepEnv, StepError
from flowrun.engine.tools import (
    STOPPING,
    ToolArgumentError,
    ToolExit,
    ToolFunction,
    ToolTimeout,
    exit_message,
    to_jsonable,
)
from flowrun.format.promptflow_multimedia import paths_from
from flowrun.format.templating import render
from flowrun.provider import side_calls
from flowrun.results import CallRecord, Usage


async def run_tool(env: StepEnv) -> Any:
    """Render ``args``, check them against the function's signature, call it, return its value.

    The return value (JSON data, a pydantic model, a dataclass ...) becomes JSON data.
    """
    step = env.step
    tool = ToolFunction(
        step.function, env.workflow.functions[step.function], "", {}, step.timeout_s
    )
    args = render(step.args, env.scope)
    try:
        with paths_from(env.workflow.base_dir):  # promptflow's Image parameters
            checked = tool.check_args(args, lenient=not step.check_args)
    except ToolArgumentError as exc:
        raise StepError(f"arguments do not fit {step.function}: {exc}") from None
    started = time.perf_counter()
    record: dict[str, Any] = {"name": step.function, "arguments": args}
    if env.index is not None:
        record["item"] = env.index  # which foreach item made the call
    env.record.tool_calls.append(record)
    calls: list[side_calls.SideCall] = []
    try:
        with side_calls.collecting(calls):
            value = await tool.call(checked)
    except (ToolTimeout, ToolExit) as exc:
        record["error"] = str(exc)
        raise StepError(str(exc)) from None
    except Exception as exc:
        record["error"] = f"{type(exc).__name__}: {exc}"
        raise StepError(f"{step.function} raised {type(exc).__name__}: {exc}") from None
    except BaseException as exc:  # sys.exit() and the like fail the step, not the process
        if isinstance(exc, STOPPING):
            raise
        record["error"] = exit_message(step.function, exc)
        raise StepError(record["error"]) from None
    finally:
        record["duration_s"] = round(time.perf_counter() - started, 4)
        _count(env, calls)
    try:
        result = to_jsonable(value)
    except TypeError as exc:
        record["error"] = str(exc)
        raise StepError(f"{step.function} {exc}") from None
    record["result"] = result
    return result


def _count(env: StepEnv, calls: list[side_calls.SideCall]) -> None:
    """The model calls the function made through flowrun's stand-in promptflow tools: the
    step's own calls, with their tokens and cost (unpriced when the server sent no usage),
    added to what the run's budget has spent once made (they are not reserved ahead)."""
    prices = env.services.prices_for(env) if calls else None
    for call in calls:
        usage = call.usage or Usage()
        cost = prices.cost(call.model, usage) if prices and call.usage is not None else None
        env.record.calls.append(CallRecord(call.model, usage, cost, call.duration_s))
        env.record.model = env.record.model or call.model
        budget = env.services.budget
        if budget is not None and cost is not None:  # spent: later calls are checked against it
            budget.settle(budget.book(0.0), cost)
