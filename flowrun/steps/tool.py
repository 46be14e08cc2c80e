"""The ``tool`` step: call a Python function with rendered arguments; no model involved."""

from __future__ import annotations

import time
from typing import Any

from ..templating import render
from ..tools import ToolArgumentError, ToolFunction, to_jsonable
from .base import StepEnv, StepError


async def run_tool(env: StepEnv) -> Any:
    """Render ``args``, check them against the function's signature, call it, return its value."""
    step = env.step
    tool = ToolFunction(
        step.function, env.workflow.functions[step.function], "", {}, step.timeout_s
    )
    args = render(step.args, env.scope)
    started = time.perf_counter()
    try:
        checked = tool.check_args(args)
    except ToolArgumentError as exc:
        raise StepError(f"arguments do not fit {step.function}: {exc}") from None
    try:
        result = to_jsonable(await tool.call(checked))
    except TimeoutError as exc:
        raise StepError(str(exc)) from None
    except Exception as exc:
        raise StepError(f"{step.function} raised {type(exc).__name__}: {exc}") from None
    env.record.tool_calls.append(
        {
            "name": step.function,
            "arguments": checked if _plain(checked) else args,
            "result": result,
            "duration_s": round(time.perf_counter() - started, 4),
        }
    )
    return result


def _plain(args: dict[str, Any]) -> bool:
    return all(
        isinstance(v, (str, int, float, bool, type(None), list, dict)) for v in args.values()
    )
