"""A Python function's signature as a JSON schema and a pydantic arguments model.

Used by the checks (``flowrun validate``) and by the tools at run time (``engine.tools``):
parameter types from the hints (through pydantic), descriptions from the docstring (a Google
``Args:``, numpy or Sphinx ``:param x:`` section).
"""

from __future__ import annotations

import functools
import inspect
import re
from typing import Annotated, Any, Union

from pydantic import BaseModel, ConfigDict, Field, create_model

from flowrun.errors import SignatureProblem as SignatureProblem


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
def args_model(function: Any, lenient: bool = False) -> type[BaseModel]:
    """A pydantic model of the function's keyword-passable parameters.

    Extra keys are forbidden, unless the function takes ``**kwargs``: then they pass through.
    ``lenient``: a value is converted to its parameter's type where it can be ("3" for an
    ``int``), and passed as it is where it cannot (as promptflow passes node values).
    """
    fields = {
        name: (_as_given_otherwise(annotation) if lenient else annotation, default)
        for name, annotation, default in _parameters(function)
    }
    extra = "allow" if _takes_var_keywords(function) else "forbid"
    try:
        return create_model(
            f"{getattr(function, '__name__', 'tool')}_args",
            __config__=ConfigDict(extra=extra),
            **fields,
        )
    except Exception as exc:
        raise _signature_problem(function, exc) from None


def _as_given_otherwise(annotation: Any) -> Any:
    """``annotation``, else any value unchanged: tried in that order."""
    if annotation is Any:
        return Any
    return Annotated[Union[annotation, Any], Field(union_mode="left_to_right")]  # noqa: UP007


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
