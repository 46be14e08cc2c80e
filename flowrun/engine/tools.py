"""Python functions as tools: JSON schemas from signatures, validated calls, sync or async.

A tool's parameter schema comes from its signature and type hints (through pydantic: plain
types, ``Optional``, defaults, pydantic models, enums, ...) and its description from the
docstring (parameter descriptions from an ``Args:`` / ``:param x:`` / numpy section).

A tool that raises, times out or gets bad arguments does not crash the run inside a chat
step: the error text goes back to the model as the tool's result so it can recover. A tool
that calls ``sys.exit()`` (or raises another ``BaseException``) fails like one that raises:
it never ends the run. Sync functions run in a dedicated thread pool, so they never block
the event loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
import inspect
import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

from flowrun.errors import ToolArgumentError as ToolArgumentError
from flowrun.errors import ToolExit as ToolExit
from flowrun.errors import ToolTimeout as ToolTimeout
from flowrun.format.signatures import (
    args_model,
    docstring_summary,
    signature_schema,
)

# Sync tools get their own pool: the loop's default executor has only cpu+4 threads, which
# would quietly cap a foreach of sync tool steps far below its max_concurrency.
_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="flowrun-tool")


# What a tool may raise that is not the tool failing: the run itself is being stopped.
STOPPING = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)


def exit_message(name: str, exc: BaseException) -> str:
    """``tool 'x' called sys.exit(3)``, or what else a tool raised that is not an Exception."""
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return f"tool '{name}' called sys.exit({code})"
    return f"tool '{name}' raised {type(exc).__name__}: {exc}"


@dataclass
class ToolFunction:
    """A Python callable with its OpenAI function schema and an argument validator."""

    name: str
    function: Any
    description: str
    parameters: dict[str, Any]
    timeout_s: float | None = None
    explicit_parameters: bool = False

    @classmethod
    def from_callable(
        cls,
        name: str,
        function: Any,
        *,
        description: str | None = None,
        parameters: dict[str, Any] | None = None,
        timeout_s: float | None = None,
    ) -> ToolFunction:
        desc = description or docstring_summary(function) or name
        schema = parameters if parameters is not None else signature_schema(function)
        return cls(name, function, desc, schema, timeout_s, parameters is not None)

    def openai_spec(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.parameters,
            },
        }

    def check_args(self, args: Any, lenient: bool = False) -> dict[str, Any]:
        """Validate (and coerce) ``args`` against the signature; raises ``ToolArgumentError``.
        ``lenient``: a value its type hint refuses is passed as it is (``check_args: false``)."""
        if not isinstance(args, dict):
            raise ToolArgumentError(f"arguments must be an object, got {type(args).__name__}")
        if self.explicit_parameters:
            from flowrun.format.validation import schema_errors

            errors = schema_errors(args, self.parameters)
            if errors:
                raise ToolArgumentError("; ".join(errors))
            return args
        model = args_model(self.function, lenient)
        try:
            validated = model.model_validate(args)
        except ValidationError as exc:
            raise ToolArgumentError("; ".join(_pydantic_error(e) for e in exc.errors())) from None
        named = validated.model_fields_set & set(model.model_fields) | _required(model)
        return {k: getattr(validated, k) for k in named} | (validated.model_extra or {})

    async def call(self, args: dict[str, Any]) -> Any:
        """Call with validated args; sync functions run in a thread; ``timeout_s`` applies.

        A sync function that times out keeps running in its thread (Python cannot stop it);
        its result is ignored.
        """
        positional, keywords = _split_args(self.function, args)
        call = functools.partial(self.function, *positional, **keywords)
        if _is_async(self.function):
            coro = self._guarded(call)
        else:
            context = contextvars.copy_context()
            coro = asyncio.get_running_loop().run_in_executor(
                _THREADS, functools.partial(context.run, self._guarded_sync, call)
            )
        result = await coro if not self.timeout_s else await self._with_timeout(coro)
        if inspect.isawaitable(result):  # a sync function that returned a coroutine
            result = await self._guarded(lambda: result)
        return result

    async def _guarded(self, start: Any) -> Any:
        """Await ``start()``; a ``SystemExit`` inside becomes ``ToolExit`` (never ends the loop)."""
        try:
            return await start()
        except (Exception, *STOPPING):
            raise
        except BaseException as exc:
            raise ToolExit(exit_message(self.name, exc)) from None

    def _guarded_sync(self, call: Any) -> Any:
        """``call()`` in a worker thread, with ``SystemExit`` turned into ``ToolExit``."""
        try:
            return call()
        except (Exception, *STOPPING):
            raise
        except BaseException as exc:
            raise ToolExit(exit_message(self.name, exc)) from None

    async def _with_timeout(self, coro: Any) -> Any:
        task = asyncio.ensure_future(coro)
        try:
            done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:  # (a TimeoutError the tool raises itself is not ours to relabel)
            task.cancel()
            raise ToolTimeout(f"tool '{self.name}' timed out after {self.timeout_s:g}s")
        return task.result()


def _is_async(function: Any) -> bool:
    if inspect.iscoroutinefunction(function):
        return True
    return not inspect.isroutine(function) and inspect.iscoroutinefunction(type(function).__call__)


@functools.lru_cache(maxsize=256)
def _positional_only(function: Any) -> tuple[str, ...]:
    """Names of ``function``'s positional-only parameters (cached: a batch calls it per record)."""
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return ()
    return tuple(p.name for p in params if p.kind is p.POSITIONAL_ONLY)


def _split_args(function: Any, args: dict[str, Any]) -> tuple[list[Any], dict[str, Any]]:
    """Positional-only parameters must be passed by position."""
    try:
        positional_only = _positional_only(function)
    except TypeError:  # an unhashable callable object
        positional_only = _positional_only.__wrapped__(function)
    if not positional_only:
        return [], args
    rest = dict(args)
    positional = []
    for name in positional_only:
        if name not in rest:
            break
        positional.append(rest.pop(name))
    return positional, rest


def _required(model: type[BaseModel]) -> set[str]:
    return {n for n, f in model.model_fields.items() if f.is_required()}


def to_jsonable(value: Any) -> Any:
    """A tool's return value as JSON data (pydantic models, dataclasses, dates, enums ...).

    Raises ``TypeError`` naming the type when the value cannot be turned into JSON.
    """
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
    as_json = getattr(value, "__flowrun_json__", None)  # promptflow's Image: its data: URL
    if callable(as_json):
        return as_json()
    try:
        return to_jsonable_python(value)
    except PydanticSerializationError:
        raise TypeError(
            f"returned a {type(value).__name__}, which is not JSON-serialisable"
        ) from None


class Toolbox:
    """The workflow's declared tools, by name."""

    def __init__(self, tools: dict[str, ToolFunction]) -> None:
        self.tools = tools

    @classmethod
    def from_workflow(cls, wf: Any) -> Toolbox:
        tools = {
            name: ToolFunction.from_callable(
                name,
                wf.functions[t.function],
                description=t.description,
                parameters=t.parameters,
                timeout_s=t.timeout_s,
            )
            for name, t in wf.spec.tools.items()
            if t.function in wf.functions
        }
        return cls(tools)

    def specs(self, names: list[str]) -> list[dict[str, Any]]:
        return [self.tools[n].openai_spec() for n in names]

    async def run_calls(
        self, calls: list[dict[str, Any]], allowed: list[str]
    ) -> list[dict[str, Any]]:
        """Run the model's tool calls concurrently; one record per call, in the calls' order."""
        return list(await asyncio.gather(*(self._run_one(c, allowed) for c in calls)))

    async def _run_one(self, call: dict[str, Any], allowed: list[str]) -> dict[str, Any]:
        fn = call.get("function", {})
        name, raw = fn.get("name", ""), fn.get("arguments") or "{}"
        record: dict[str, Any] = {"id": call.get("id"), "name": name, "arguments": raw}
        started = time.perf_counter()
        try:
            if name not in allowed or name not in self.tools:
                raise ToolArgumentError(f"no tool named '{name}' (available: {', '.join(allowed)})")
            try:
                args = json.loads(raw)
            except ValueError as exc:
                raise ToolArgumentError(f"arguments are not valid JSON: {exc}") from None
            record["arguments"] = args
            tool = self.tools[name]
            record["result"] = to_jsonable(await tool.call(tool.check_args(args)))
        except ToolArgumentError as exc:
            record["error"] = f"invalid arguments for {name}: {exc}"
        except (ToolTimeout, ToolExit) as exc:
            record["error"] = str(exc)
        except Exception as exc:  # the tool raised: tell the model
            record["error"] = f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # sys.exit() and the like: the tool failed, the run goes on
            if isinstance(exc, STOPPING):
                raise
            record["error"] = exit_message(name, exc)
        record["duration_s"] = round(time.perf_counter() - started, 4)
        return record


def tool_message(record: dict[str, Any]) -> dict[str, Any]:
    """The ``role: tool`` message that answers one tool call."""
    if "error" in record:
        content = json.dumps({"error": record["error"]}, ensure_ascii=False)
    else:
        result = record.get("result")
        content = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
    return {"role": "tool", "tool_call_id": record["id"], "content": content}


def _pydantic_error(err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
    if err.get("type") == "extra_forbidden":
        return f"unexpected argument '{loc}'"
    if err.get("type") == "missing":
        return f"missing argument '{loc}'"
    return f"argument '{loc}': {err.get('msg')}"
