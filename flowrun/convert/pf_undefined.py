"""Where promptflow's Jinja and flowrun's differ at run time, and how a translated prompt keeps
promptflow's behaviour.

* promptflow renders with Jinja's default ``Undefined``: a missing key or attribute
  (``{{ item.outputs.function_call }}``) renders empty and is false in an ``{% if %}``.
  flowrun renders with ``StrictUndefined``, where it is an error. So every read of an attribute
  or item in a translated prompt is wrapped: ``item.outputs.function_call`` becomes
  ``(item.outputs.function_call | default(""))`` -- empty when missing, the value otherwise
  (``None`` stays ``None``). Reads that already handle a missing value are left alone (before
  ``is defined`` / any test, ``| default``), and so is a chain whose inner part is missing
  (``a.missing.b``), which fails in promptflow too.
* promptflow's sandbox lets a template change a list or dict (``{% set _ = l.append(x) %}``);
  flowrun's immutable sandbox does not. Such calls are found and reported (``mutations``).
"""

from __future__ import annotations

from jinja2 import nodes

Token = tuple[str, str]  #: (kind, value) of a significant token inside a tag

# Names that are keywords, Jinja's own objects or loop helpers, never the start of a data read.
_NOT_DATA = frozenset(
    {
        "and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False",
        "None", "recursive", "with", "without", "as", "import", "ignore", "missing",
        "scoped", "required", "loop", "range", "dict", "lipsum", "cycler", "joiner", "namespace",
        "super", "varargs", "kwargs", "caller", "self",
    }
)  # fmt: skip
# Methods that change a list, dict or set in place (jinja2.sandbox refuses them).
MUTATING = frozenset(
    {
        "append", "extend", "insert", "remove", "reverse", "sort", "pop", "popitem", "clear",
        "setdefault", "update", "add", "discard", "difference_update",
        "intersection_update", "symmetric_difference_update",
    }
)  # fmt: skip
_DEFAULT_FILTERS = ("default", "d")
SAFE_SUFFIX = ' | default("")'


def safe_spans(tag: list[Token], *, block: bool) -> list[tuple[int, int]]:
    """The ``(first, last)`` token indices of each attribute/item read in a tag to wrap."""
    spans: list[tuple[int, int]] = []
    for i, (kind, value) in enumerate(tag):
        if kind != "name" or value in _NOT_DATA or (block and i == 0) or _after_operator(tag, i):
            continue
        end, last = _postfix_end(tag, i + 1)
        if last != "get":
            continue
        following = tag[end] if end < len(tag) else None
        if following in (("name", "is"), ("operator", "=")):
            continue  # a test reads a missing value safely; '=' is an assignment target
        if following == ("operator", "|") and tag[end + 1 : end + 2] in (
            [("name", f)] for f in _DEFAULT_FILTERS
        ):
            continue
        spans.append((i, end - 1))
    return spans


def mutations(ast: nodes.Template) -> list[str]:
    """The in-place methods the template calls (``append``, ``update``...), sorted."""
    return sorted(
        {
            call.node.attr
            for call in ast.find_all(nodes.Call)
            if isinstance(call.node, nodes.Getattr) and call.node.attr in MUTATING
        }
    )


def _after_operator(tag: list[Token], i: int) -> bool:
    """Whether ``tag[i]`` is an attribute, filter or test name rather than a variable."""
    prev = tag[i - 1] if i else None
    if prev in (("operator", "."), ("operator", "|"), ("name", "is")):
        return True
    return prev == ("name", "not") and i > 1 and tag[i - 2] == ("name", "is")


def _postfix_end(tag: list[Token], j: int) -> tuple[int, str | None]:
    """Where the ``.attr`` / ``[item]`` / ``(call)`` suffixes from ``j`` end, and the last one
    ("get" or "call")."""
    last: str | None = None
    while j < len(tag):
        if (
            tag[j] == ("operator", ".")
            and j + 1 < len(tag)
            and tag[j + 1][0] in ("name", "integer")
        ):
            j, last = j + 2, "get"
        elif tag[j] in (("operator", "["), ("operator", "(")):
            last = "get" if tag[j][1] == "[" else "call"
            j = _closing(tag, j) + 1
        else:
            break
    return j, last


def _closing(tag: list[Token], j: int) -> int:
    """The index of the bracket that closes the one at ``j`` (or the last index)."""
    depth = 0
    for k in range(j, len(tag)):
        kind, value = tag[k]
        if kind == "operator" and value in ("(", "[", "{"):
            depth += 1
        elif kind == "operator" and value in (")", "]", "}"):
            depth -= 1
            if depth == 0:
                return k
    return len(tag) - 1
