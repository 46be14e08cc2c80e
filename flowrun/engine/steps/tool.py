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
from flowrun.format.templating import render


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
        checked = tool.check_args(args)
    except ToolArgumentError as exc:
        raise StepError(f"arguments do not fit {step.function}: {exc}") from None
    started = time.perf_counter()
    record: dict[str, Any] = {"name": step.function, "arguments": args}
    if env.index is not None:
        record["item"] = env.index  # which foreach item made the call
    env.record.tool_calls.append(record)
    try:
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
    try:
        result = to_jsonable(value)
    except TypeError as exc:
        record["error"] = str(exc)
        raise StepError(f"{step.function} {exc}") from None
    record["result"] = result
    return result
