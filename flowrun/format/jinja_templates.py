"""Templates rendered by Jinja, in the sandbox with its limits: every template that
``simple_templates`` does not read itself (tags, filters, operators...). Imported on first
use by ``templating``, so a run whose templates only place values never loads Jinja.

Values put in the context (inputs, step outputs) are data: they are never parsed as
templates, so an input containing ``{{ 7*7 }}`` stays that literal text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.environment import TemplateExpression

from flowrun.errors import TemplateError, did_you_mean
from flowrun.format import sandbox
from flowrun.format.simple_templates import References


class _DataFirstEnvironment(sandbox.LimitedSandbox):
    """The sandbox (with its size and time limits), except that ``mapping.key`` reads the key before any method of that name.

    Plain Jinja resolves ``inputs.items`` to the ``dict.items`` method; in a workflow it
    must be the input called ``items`` (likewise ``keys``, ``values``, ``get``...).
    """

    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, dict) and attribute in obj:
            return obj[attribute]
        return super().getattr(obj, attribute)


def _tojson(value: Any, indent: int | None = None) -> str:
    """``tojson`` for prompts: plain JSON, keys in their order, text not escaped for HTML."""
    return json.dumps(value, ensure_ascii=False, indent=indent, default=str)


_env = _DataFirstEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)
_env.filters["tojson"] = sandbox.guard_filter("tojson", _tojson)


@dataclass
class _Compiled:
    render: Any
    native_expr: Any | None
    refs: References = field(default_factory=References)


def _lone_expression(ast: nodes.Template) -> nodes.Expr | None:
    """The expression of a template that is exactly one ``{{ expr }}`` (blanks around it
    allowed), else None."""
    if len(ast.body) != 1 or not isinstance(ast.body[0], nodes.Output):
        return None
    parts = [
        n
        for n in ast.body[0].nodes
        if not (isinstance(n, nodes.TemplateData) and not n.data.strip())
    ]
    if len(parts) != 1 or isinstance(parts[0], nodes.TemplateData):
        return None
    return parts[0]


def _native(expr: nodes.Expr) -> TemplateExpression:
    """A callable that evaluates ``expr`` and returns its value (as ``compile_expression``)."""
    body = nodes.Template(
        [nodes.Assign(nodes.Name("result", "store", lineno=expr.lineno), expr, lineno=expr.lineno)],
        lineno=1,
    )
    body.set_environment(_env)
    return TemplateExpression(_env.from_string(body), undefined_to_none=False)


# tags that read another template file: a workflow's templates are its own strings
_FILE_TAGS = {
    nodes.Include: "include",
    nodes.Import: "import",
    nodes.FromImport: "from ... import",
    nodes.Extends: "extends",
}
_KINDS = (
    nodes.Name,
    nodes.Getattr,
    nodes.Getitem,
    nodes.Filter,
    nodes.Test,
    nodes.Block,
    nodes.Macro,
    *_FILE_TAGS,
)


def _nodes_by_kind(ast: nodes.Template) -> dict[type, list[Any]]:
    """The nodes of the kinds the checks read, each kind in document order, in one walk
    (``find_all`` walks the whole tree once per call)."""
    found: dict[type, list[Any]] = {kind: [] for kind in _KINDS}
    stack: list[nodes.Node] = [ast]
    while stack:
        node = stack.pop()
        bucket = found.get(type(node))
        if bucket is not None:
            bucket.append(node)
        children = list(node.iter_child_nodes())
        children.reverse()
        stack.extend(children)
    return found


def _collect_references(found: dict[type, list[Any]]) -> References:
    steps: set[str] = set()
    inputs: set[str] = set()
    attrs: list[tuple[str, str]] = []
    name_nodes = found[nodes.Name]
    assigned = {n.name for n in name_nodes if n.ctx in ("store", "param")}
    assigned |= {n.name for n in found[nodes.Macro]}
    names = {n.name for n in name_nodes if n.ctx == "load"} - assigned

    def key_of(node: nodes.Node) -> str | None:
        if isinstance(node, nodes.Getattr):
            return node.attr
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            return str(node.arg.value)
        return None

    named: set[int] = set()  # ``steps`` names that are followed by a step id
    computed: list[int] = []  # lines of ``steps[expression]``
    for node in found[nodes.Getattr] + found[nodes.Getitem]:
        inner = node.node
        if isinstance(inner, nodes.Name) and inner.name in ("steps", "inputs"):
            key = key_of(node)
            if key is not None:
                (steps if inner.name == "steps" else inputs).add(key)
                named.add(id(inner))
            elif inner.name == "steps" and isinstance(node, nodes.Getitem):
                computed.append(node.lineno)
                named.add(id(inner))
        elif isinstance(inner, (nodes.Getattr, nodes.Getitem)):
            base = inner.node
            if isinstance(base, nodes.Name) and base.name == "steps":
                step, attr = key_of(inner), key_of(node)
                if step is not None and attr is not None:
                    attrs.append((step, attr))
    whole = None
    if "steps" not in assigned:
        whole = min(
            (
                n.lineno
                for n in name_nodes
                if n.name == "steps" and n.ctx == "load" and id(n) not in named
            ),
            default=None,
        )
    return References(
        frozenset(steps),
        frozenset(inputs),
        frozenset(names),
        tuple(attrs),
        whole,
        min(computed) if computed and "steps" not in assigned else None,
    )


@lru_cache(maxsize=4096)
def analyse(source: str) -> References:
    """Parse ``source`` and read its references; raises ``TemplateError`` on bad syntax.

    Only parses (no code generation), so validating many templates stays cheap; the
    checks the code generator would make (unknown filters and tests, duplicate blocks) are
    made here on the syntax tree, with a suggestion for a misspelt name.
    """
    try:
        ast = _env.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None
    found = _nodes_by_kind(ast)
    for kind, tag in _FILE_TAGS.items():
        for node in found[kind]:
            raise TemplateError(
                f"{{% {tag} %}} is not supported: a template cannot read other files (put "
                "the text in the workflow, or pass it as an input: -i name=@file)",
                node.lineno,
            )
    for node in found[nodes.Filter]:
        if node.name not in _env.filters:
            raise TemplateError(
                f"no filter named '{node.name}'{did_you_mean(node.name, _env.filters)}", node.lineno
            )
    for node in found[nodes.Test]:
        if node.name not in _env.tests:
            raise TemplateError(
                f"no test named '{node.name}'{did_you_mean(node.name, _env.tests)}", node.lineno
            )
    seen: set[str] = set()
    for node in found[nodes.Block]:
        if node.name in seen:
            raise TemplateError(f"block '{node.name}' defined twice", node.lineno)
        seen.add(node.name)
    return _collect_references(found)


@lru_cache(maxsize=4096)
def _compile(source: str) -> _Compiled:
    """The render function of ``source`` (and of its lone expression, if it is one)."""
    refs = analyse(source)
    try:
        expr = _lone_expression(_env.parse(source))
        native = _native(expr) if expr is not None else None
        template = _env.from_string(source)
        # a plain dict, not jinja's ChainMap over the (fixed) environment globals: each
        # render copies the globals, and a ChainMap makes that the dearest part of a render
        template.globals = dict(template.globals)
        inner = getattr(native, "_template", None)  # a lone expression renders through one too
        if inner is not None:
            inner.globals = dict(inner.globals)
        return _Compiled(template.render, native, refs)
    except TemplateSyntaxError as exc:
        raise TemplateError(exc.message or str(exc), exc.lineno) from None


def gives_text(source: str) -> bool:
    """Whether a template always renders to text (it is not one lone ``{{ expression }}``)."""
    return _lone_expression(_env.parse(source)) is None


def render(source: str, context: dict[str, Any]) -> Any:
    """Render a template string; a lone ``{{ expr }}`` keeps the expression's native type."""
    compiled = _compile(source)
    sandbox.begin()
    try:
        if compiled.native_expr is not None:
            value = compiled.native_expr(**context)
            if isinstance(value, StrictUndefined):
                str(value)  # raises UndefinedError with jinja's message
            if isinstance(value, str) and type(value) is not str:
                value = str(value)  # markupsafe.Markup from filters such as ``safe``
            return value
        return compiled.render(**context)
    except TemplateError:
        raise
    except Exception as exc:  # UndefinedError, SecurityError, TypeError from filters ...
        raise TemplateError(_describe(exc)) from None


def _describe(exc: Exception) -> str:
    text = str(exc)
    if type(exc).__name__ == "UndefinedError":
        return text.replace("'dict object'", "the object")
    return f"{type(exc).__name__}: {text}"
