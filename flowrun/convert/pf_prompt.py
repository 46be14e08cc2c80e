"""promptflow ``.jinja2`` prompts -> flowrun templates.

promptflow renders a prompt with Jinja's ``trim_blocks`` on and the node's inputs as the
template's variables; an ``llm`` node with ``api: chat`` then splits the text into messages at
role lines (``# system:``, ``# user:``, ``# assistant:``). flowrun renders every template in
its own sandbox, with ``inputs`` and ``steps`` in scope and ``trim_blocks`` off. So a prompt
is translated, token by token, into a flowrun template that renders to the same text:

* the newline that ``trim_blocks`` removes after a block tag is removed here: ``%}`` becomes
  ``-%}`` when the next line starts with text (the line breaks stay readable), otherwise the
  newline is dropped;
* each variable becomes the flowrun expression it is bound to (``question`` ->
  ``inputs.question``, ``context`` -> ``steps.retrieve.output``); a variable the template
  also assigns (``{% set %}``, a loop target) is bound once with a ``{% set %}`` in front;
  a variable the node does not give renders empty, as it does in promptflow.

The role lines stay in the text: a chat step's ``messages_template`` splits it at run time.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from jinja2 import Environment, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

from flowrun.convert.pf_images import has_markers, take_images
from flowrun.convert.pf_undefined import SAFE_SUFFIX, mutations, safe_spans
from flowrun.errors import PromptError as PromptError

# How promptflow renders prompts (``render_jinja_template(trim_blocks=True, keep_trailing_newline=True)``).
_PF_ENV = Environment(trim_blocks=True, keep_trailing_newline=True)
_FLOWRUN_ENV = ImmutableSandboxedEnvironment(keep_trailing_newline=True)
JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})
_TRIMMED_ENDS = {"block_end": "%}", "comment_end": "#}"}
_UNSUPPORTED = {
    nodes.Include: "{% include %}",
    nodes.Extends: "{% extends %}",
    nodes.Import: "{% import %}",
    nodes.FromImport: "{% from ... import %}",
}


# promptflow's role lines that a flowrun messages_template does not send (function results).
# Role lines a messages_template cannot send: 'tool:', and 'function:' without the '## name:'
# line after it (a function message is sent with its name, as promptflow's).
_OTHER_ROLE = re.compile(
    r"^\s*#?\s*(tool|function(?!\s*:[ \t]*\n(?:[ \t]*\n)*[ \t]*#{0,2}[ \t]*name[ \t]*:))\s*:\s*$",
    re.IGNORECASE | re.MULTILINE,
)


@dataclass
class Translated:
    """A prompt translated into a flowrun template."""

    text: str
    variables: list[str] = field(default_factory=list)  #: the template's variables
    unbound: list[str] = field(default_factory=list)  #: variables the node does not give
    unsupported: list[str] = field(default_factory=list)  #: constructs flowrun cannot render
    mutations: list[str] = field(default_factory=list)  #: in-place methods flowrun refuses
    images: list[str] = field(default_factory=list)  #: flowrun expressions of the images
    image_markers: list[tuple[str, str]] = field(default_factory=list)  #: not converted: why
    other_roles: list[str] = field(default_factory=list)  #: role lines flowrun cannot send


def translate(source: str, bindings: dict[str, str], *, chat: bool = False) -> Translated:
    """Translate a promptflow prompt; ``bindings`` maps variable names to flowrun expressions.

    With ``chat`` (an ``llm`` node's chat prompt), image markers become ``images``
    (``pf_images``); elsewhere a marker stays text and is listed in ``image_markers``.
    """
    source = source.replace("\r\n", "\n").replace("\r", "\n")
    ast = _parse(source)
    assigned = _assigned_names(ast)
    images = take_images(source, set(bindings), assigned) if chat else None
    if images is not None and images.variables:
        source = images.source
        ast = _parse(source)
    variables = sorted(meta.find_undeclared_variables(ast) - JINJA_GLOBALS)
    substitute: dict[str, str] = {}
    prelude: dict[str, str] = {}
    unbound: list[str] = []
    for name in variables:
        expr = bindings.get(name)
        if expr is None:
            unbound.append(name)
            expr = '""'
        (prelude if name in assigned else substitute)[name] = expr
    text = _rewrite(source, substitute)
    text = "".join(f"{{% set {name} = {expr} %}}" for name, expr in prelude.items()) + text
    try:
        _FLOWRUN_ENV.parse(text)
    except TemplateSyntaxError as exc:  # a bug here, not in the user's prompt
        raise PromptError(f"could not translate the prompt: {exc.message}") from None
    unsupported = sorted({label for kind, label in _UNSUPPORTED.items() if any(ast.find_all(kind))})
    out = Translated(text, variables, unbound, unsupported, mutations(ast))
    if chat:
        out.other_roles = sorted({m.lower() for m in _OTHER_ROLE.findall(source)})
    if images is not None:
        out.images = [bindings[name] for name in images.variables]
        out.image_markers = images.unconverted
    elif has_markers(source):
        out.image_markers = [
            (
                "![image](...)",
                "flowrun sends images with a chat step's images: field, not inside the text",
            )
        ]
    return out


def _parse(source: str) -> nodes.Template:
    try:
        return _PF_ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise PromptError(f"line {exc.lineno}: Jinja syntax error: {exc.message}") from None


def jinja_literal(value: Any) -> str:
    """A Jinja expression for a YAML value (``null`` -> ``none``, strings quoted)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(jinja_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        items = (f"{jinja_literal(str(k))}: {jinja_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    return jinja_literal(str(value))


def _assigned_names(ast: nodes.Template) -> set[str]:
    names = {n.name for n in ast.find_all(nodes.Name) if n.ctx in ("store", "param")}
    names |= {m.name for m in ast.find_all(nodes.Macro)}
    names |= {i.target for i in ast.find_all(nodes.Import)}
    for imp in ast.find_all(nodes.FromImport):
        names |= {n if isinstance(n, str) else n[1] for n in imp.names}
    return names


def _rewrite(source: str, substitute: dict[str, str]) -> str:
    """Re-emit ``source`` token by token for flowrun's environment (see the module docstring)."""
    tokens = list(_PF_ENV.lexer.tokeniter(source, None))
    out: list[str] = []
    pos = 0
    in_tag: list[tuple[str, str]] = []  # significant tokens of the current tag so far
    where: list[int] = []  # the index in ``out`` of each of them
    block = False
    for i, (_, kind, value) in enumerate(tokens):
        at = source.find(value, pos)
        if at < 0 or source[pos:at].strip():
            raise PromptError("could not translate the prompt (unexpected token)")
        out.append(source[pos:at])  # whitespace that a '-' marker strips; it still does
        pos = at + len(value)
        if kind.endswith("_begin"):
            in_tag, where, block = [], [], kind == "block_begin"
        if kind in _TRIMMED_ENDS and value == _TRIMMED_ENDS[kind] + "\n":
            following = tokens[i + 1] if i + 1 < len(tokens) else None
            if following is None or following[1] != "data" or not following[2][:1].isspace():
                value = "-" + value  # strips exactly the newline: the next text starts at once
            else:
                value = value[:-1]
        elif kind == "raw_end" and value.endswith("\n"):
            value = value[:-1]
        elif kind == "name" and value in substitute and _is_variable(in_tag, tokens, i):
            expr = substitute[value]
            value = f"({expr})" if expr.startswith("-") else expr  # -1|abs is -(1|abs)
        if kind not in ("whitespace", "data") and not kind.endswith("_begin"):
            in_tag.append((kind, tokens[i][2]))
            where.append(len(out))
        out.append(value)
        if kind in ("variable_end", "block_end"):  # missing keys render empty, as in promptflow
            for first, last in safe_spans(in_tag, block=block):
                out[where[first]] = "(" + out[where[first]]
                out[where[last]] += SAFE_SUFFIX + ")"
    out.append(source[pos:])
    return "".join(out)


def _is_variable(before: list[tuple[str, str]], tokens: list[Any], i: int) -> bool:
    """Whether the name token ``tokens[i]`` reads a variable (not an attribute, filter, test or
    keyword-argument name)."""
    prev = before[-1] if before else None
    if prev in (("operator", "."), ("operator", "|"), ("name", "is")):
        return False
    if prev == ("name", "not") and len(before) > 1 and before[-2] == ("name", "is"):
        return False
    for _, kind, value in tokens[i + 1 :]:
        if kind == "whitespace":
            continue
        return (kind, value) != ("operator", "=")
    return True
