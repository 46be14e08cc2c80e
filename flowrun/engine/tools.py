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
import re
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, create_model
from pydantic_core import PydanticSerializationError, to_jsonable_python

# Sync tools get their own pool: the loop's default executor has only cpu+4 threads, which
# would quietly cap a foreach of sync tool steps far below its max_concurrency.
_THREADS = concurrent.futures.ThreadPoolExecutor(max_workers=64, thread_name_prefix="flowrun-tool")


class ToolArgumentError(Exception):
    """Arguments that do not fit a function's signature; the message names them."""


class ToolTimeout(TimeoutError):
    """A tool ran longer than its ``timeout_s``."""


class ToolExit(Exception):
    """A tool raised ``SystemExit`` (``sys.exit()``) or another ``BaseException``."""


# What a tool may raise that is not the tool failing: the run itself is being stopped.
STOPPING = (asyncio.CancelledError, KeyboardInterrupt, GeneratorExit)


def exit_message(name: str, exc: BaseException) -> str:
    """``tool 'x' called sys.exit(3)``, or what else a tool raised that is not an Exception."""
    if isinstance(exc, SystemExit):
        code = "" if exc.code is None else repr(exc.code)
        return f"tool '{name}' called sys.exit({code})"
    return f"tool '{name}' raised {type(exc).__name__}: {exc}"


class SignatureProblem(Exception):
    """A signature that cannot be turned into a JSON schema; the message names the parameter."""


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

    def check_args(self, args: Any) -> dict[str, Any]:
        """Validate (and coerce) ``args`` against the signature; raises ``ToolArgumentError``."""
        if not isinstance(args, dict):
            raise ToolArgumentError(f"arguments must be an object, got {type(args).__name__}")
        if self.explicit_parameters:
            from flowrun.format.validation import schema_errors

            errors = schema_errors(args, self.parameters)
            if errors:
                raise ToolArgumentError("; ".join(errors))
            return args
        model = args_model(self.function)
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


def _parameters(function: Any) -> list[tuple[str, Any, Any]]:
    """``(name, annotation, default)`` of the parameters a caller can pass by name."""
    try:
        sig = inspect.signature(function)
    except (TypeError, ValueError) as exc:
        raise SignatureProblem(f"cannot read the signature: {exc}") from None
    try:
        hints = inspect.get_annotations(
            function
            if inspect.isfunction(function) or inspect.ismethod(function)
            else function.__call__,
            eval_str=True,
        )
    except Exception:
        hints = {}
    out = []
    for pname, param in sig.parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = hints.get(pname, param.annotation)
        if annotation is param.empty or isinstance(annotation, str):
            annotation = Any
        default = ... if param.default is param.empty else param.default
        out.append((pname, annotation, default))
    return out


@functools.lru_cache(maxsize=256)
def args_model(function: Any) -> type[BaseModel]:
    """A pydantic model of the function's keyword-passable parameters.

    Extra keys are forbidden, unless the function takes ``**kwargs``: then they pass through.
    """
    fields = {name: (annotation, default) for name, annotation, default in _parameters(function)}
    extra = "allow" if _takes_var_keywords(function) else "forbid"
    try:
        return create_model(
            f"{getattr(function, '__name__', 'tool')}_args",
            __config__=ConfigDict(extra=extra),
            **fields,
        )
    except Exception as exc:
        raise _signature_problem(function, exc) from None


def _takes_var_keywords(function: Any) -> bool:
    try:
        params = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD for p in params)


def _signature_problem(function: Any, exc: Exception) -> SignatureProblem:
    """Name the first parameter whose type has no JSON schema."""
    for name, annotation, default in _parameters(function):
        try:
            create_model("probe", **{name: (annotation, default)}).model_json_schema()
        except Exception:
            return SignatureProblem(
                f"parameter '{name}' has type {_type_name(annotation)}, which has no JSON schema; "
                "annotate it with a JSON-compatible type (str, int, list[str], a pydantic model, ...) "
                "or declare the tool's parameters: explicitly"
            )
    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return SignatureProblem(f"cannot build a JSON schema from the signature: {first}")


def _type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")


def signature_schema(function: Any) -> dict[str, Any]:
    """The JSON schema of a function's parameters, from its signature, hints and docstring.

    Raises ``SignatureProblem`` when a parameter's type cannot be described as JSON schema.
    """
    model = args_model(function)
    try:
        schema = model.model_json_schema()
    except Exception as exc:
        raise _signature_problem(function, exc) from None
    schema = _drop_titles(schema)
    schema.setdefault("properties", {})
    described = param_descriptions(inspect.getdoc(function) or "")
    for name, prop in schema["properties"].items():
        if name in described and isinstance(prop, dict) and "description" not in prop:
            prop["description"] = described[name]
    schema["additionalProperties"] = False
    return schema


def _drop_titles(node: Any) -> Any:
    """Remove pydantic's generated ``title`` keywords (keeps properties *named* title)."""
    if isinstance(node, list):
        return [_drop_titles(v) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "title" and isinstance(value, str):
            continue
        if key in ("properties", "$defs", "definitions") and isinstance(value, dict):
            out[key] = {k: _drop_titles(v) for k, v in value.items()}
        elif key in ("default", "enum", "const", "examples", "required"):
            out[key] = value
        else:
            out[key] = _drop_titles(value)
    return out


# --- docstrings ---------------------------------------------------------------------
_SECTION = re.compile(
    r"^(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|Attributes)"
    r"\s*:?$"
)
_ARG_SECTIONS = ("Args", "Arguments", "Parameters", "Params")
_GOOGLE_ARG = re.compile(r"^\*{0,2}(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ARG = re.compile(r"^\*{0,2}(\w+)\s*(?::.*)?$")
_SPHINX_PARAM = re.compile(r"^:param\s+(?:[^:]*\s)?\*{0,2}(\w+)\s*:\s*(.*)$")


def docstring_summary(function: Any) -> str:
    """The docstring's text before its first section (``Args:``, ``:param``, ``Returns`` ...)."""
    lines: list[str] = []
    for line in (inspect.getdoc(function) or "").splitlines():
        if _SECTION.match(line.strip()) or line.strip().startswith(":"):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def param_descriptions(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google (``Args:``), numpy or Sphinx (``:param x:``) docstring."""
    lines = doc.expandtabs().splitlines()
    found: dict[str, list[str]] = {}
    current: str | None = None
    for line in lines:  # Sphinx: ":param name: text" plus indented continuation lines
        text = line.strip()
        if m := _SPHINX_PARAM.match(text):
            current = m.group(1)
            found[current] = [m.group(2)]
        elif current and text and not text.startswith(":") and line[:1].isspace():
            found[current].append(text)
        else:
            current = None
    for i, line in enumerate(lines):  # Google "Args:" blocks and numpy "Parameters / -----"
        text = line.strip()
        numpy = i + 1 < len(lines) and _is_rule(lines[i + 1])
        if text.rstrip(":") not in _ARG_SECTIONS or not (text.endswith(":") or numpy):
            continue
        found.update(_arg_block(lines[i + 2 :] if numpy else lines[i + 1 :], _indent(line), numpy))
    return {k: " ".join(v).strip() for k, v in found.items() if " ".join(v).strip()}


def _arg_block(lines: list[str], header_indent: int, numpy: bool) -> dict[str, list[str]]:
    """Entries of one parameter section: a name line, then more-indented description lines."""
    found: dict[str, list[str]] = {}
    entry_indent: int | None = None
    current: str | None = None
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        indent = _indent(line)
        if indent < header_indent or (not numpy and indent == header_indent):
            break
        if numpy and i + 1 < len(lines) and _is_rule(lines[i + 1]):
            break  # the next numpy section
        if entry_indent is None:
            entry_indent = indent
        if indent == entry_indent:
            m = (_NUMPY_ARG if numpy else _GOOGLE_ARG).match(line.strip())
            if m is None:
                break
            current = m.group(1)
            found[current] = [] if numpy else [m.group(2)]
        elif current is not None:
            found[current].append(line.strip())
    return found


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _is_rule(line: str) -> bool:
    return len(line.strip()) >= 3 and set(line.strip()) == {"-"}


def to_jsonable(value: Any) -> Any:
    """A tool's return value as JSON data (pydantic models, dataclasses, dates, enums ...).

    Raises ``TypeError`` naming the type when the value cannot be turned into JSON.
    """
    if isinstance(value, (str, int, float, bool, type(None))):
        return value
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
