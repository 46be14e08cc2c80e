"""Python functions as tools: JSON schemas from signatures, validated calls, sync or async.

A tool that raises, times out or gets bad arguments does not crash the run inside a chat
step: the error text goes back to the model as the tool's result so it can recover.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model


class ToolArgumentError(Exception):
    """Arguments that do not fit a function's signature; the message names them."""


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
        doc = inspect.getdoc(function) or ""
        desc = description or (doc.split("\n\n")[0].strip() if doc else name)
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

    def check_args(self, args: dict[str, Any]) -> dict[str, Any]:
        """Validate (and coerce) ``args`` against the signature; raises ``ToolArgumentError``."""
        if not isinstance(args, dict):
            raise ToolArgumentError(f"arguments must be an object, got {type(args).__name__}")
        if self.explicit_parameters:
            from jsonschema import Draft202012Validator

            errors = sorted(
                Draft202012Validator(self.parameters).iter_errors(args), key=lambda e: list(e.path)
            )
            if errors:
                raise ToolArgumentError("; ".join(_json_error(e) for e in errors))
            return args
        model = _args_model(self.function)
        try:
            validated = model.model_validate(args)
        except ValidationError as exc:
            raise ToolArgumentError("; ".join(_pydantic_error(e) for e in exc.errors())) from None
        return {k: getattr(validated, k) for k in validated.model_fields_set | _required(model)}

    async def call(self, args: dict[str, Any]) -> Any:
        """Call with validated args; sync functions run in a thread; ``timeout_s`` applies."""
        if inspect.iscoroutinefunction(self.function):
            coro = self.function(**args)
        else:
            coro = asyncio.to_thread(functools.partial(self.function, **args))
        if self.timeout_s:
            try:
                return await asyncio.wait_for(coro, self.timeout_s)
            except asyncio.TimeoutError:
                raise TimeoutError(
                    f"tool '{self.name}' timed out after {self.timeout_s:g}s"
                ) from None
        return await coro


def _required(model: type[BaseModel]) -> set[str]:
    return {n for n, f in model.model_fields.items() if f.is_required()}


@functools.lru_cache(maxsize=256)
def _args_model(function: Any) -> type[BaseModel]:
    sig = inspect.signature(function)
    try:
        hints = inspect.get_annotations(function, eval_str=True)
    except Exception:
        hints = {}
    fields: dict[str, Any] = {}
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, Any)
        default = ... if param.default is param.empty else param.default
        fields[pname] = (annotation, default)
    return create_model(
        f"{getattr(function, '__name__', 'tool')}_args",
        __config__=ConfigDict(extra="forbid"),
        **fields,
    )


def signature_schema(function: Any) -> dict[str, Any]:
    """The JSON schema of a function's parameters, from its signature and type hints."""
    schema = _args_model(function).model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        if isinstance(prop, dict):
            prop.pop("title", None)
    schema.setdefault("properties", {})
    schema["additionalProperties"] = False
    return schema


def to_jsonable(value: Any) -> Any:
    """A tool's return value as JSON-compatible data (pydantic models are dumped)."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    return value


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
            result = to_jsonable(await tool.call(tool.check_args(args)))
            record["result"] = result
        except ToolArgumentError as exc:
            record["error"] = f"invalid arguments for {name}: {exc}"
        except Exception as exc:  # the tool raised: tell the model
            record["error"] = f"{type(exc).__name__}: {exc}"
        record["duration_s"] = round(time.perf_counter() - started, 4)
        return record


def tool_message(record: dict[str, Any]) -> dict[str, Any]:
    """The ``role: tool`` message that answers one tool call."""
    if "error" in record:
        content = json.dumps({"error": record["error"]})
    else:
        result = record.get("result")
        content = (
            result
            if isinstance(result, str)
            else json.dumps(result, ensure_ascii=False, default=str)
        )
    return {"role": "tool", "tool_call_id": record["id"], "content": content}


def _pydantic_error(err: Any) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
    if err.get("type") == "extra_forbidden":
        return f"unexpected argument '{loc}'"
    if err.get("type") == "missing":
        return f"missing argument '{loc}'"
    return f"'{loc}': {err.get('msg')}"


def _json_error(err: Any) -> str:
    where = "/".join(str(p) for p in err.path)
    return f"'{where}': {err.message}" if where else err.message
