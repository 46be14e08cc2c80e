"""The template sandbox's limits: how much text a render may make and how long it may run.

Jinja's sandbox stops templates reaching Python internals, not templates that ask for a
gigabyte (``{{ 'x' | center(10**9) }}``) or loop for hours. Here every way a template makes
a value (operators, filters, method calls, ``~``, block and macro bodies, the output) checks
the size of what it is about to make *before* making it, and every loop iteration, call and
filter counts towards a CPU-time budget. A render over either limit fails at once with a
:class:`~flowrun.errors.TemplateError` saying which limit (see docs/workflow-format.md,
"Template limits").
"""

from __future__ import annotations

import re
import threading
import time
from functools import update_wrapper
from typing import Any

from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.filters import FILTERS
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from jinja2.utils import generate_lorem_ipsum
from markupsafe import Markup

from flowrun.errors import TemplateError

MAX_RENDER_CHARS = 10_000_000
"""Characters one render may produce, and the largest text, list or mapping (counted in
characters and items) any operation inside it may build. Ten times the text of the largest
context windows (about 1M tokens is about 4M characters), so no prompt meets it."""

MAX_RENDER_SECONDS = 0.5
"""CPU seconds one render may use (the rendering thread's CPU time, so a busy machine does
not make a template fail). A prompt renders in well under a millisecond."""

MAX_RANGE = 100_000
"""Items ``range()`` may give (Jinja's own sandbox limit)."""

MAX_INT_BITS = 100_000
"""Bits in an integer ``*`` or ``**`` may make (about 30,000 digits)."""

MAX_RENDER_MADE = 10 * MAX_RENDER_CHARS
"""Characters of all the texts (and items of all the lists) one render may make, counting
those it throws away: this bounds its memory whatever it does."""

_CHECK_EVERY = 256  # ticks between two reads of the CPU clock


class _Budget(threading.local):
    def __init__(self) -> None:
        self.ticks = 0
        self.next_check = _CHECK_EVERY
        self.deadline: float | None = None
        self.made = 0


_budget = _Budget()


def begin() -> None:
    """Start the budgets of one render (in this thread). The CPU clock is first read after
    ``_CHECK_EVERY`` ticks: most renders never read it."""
    budget = _budget
    budget.ticks = 0
    budget.next_check = _CHECK_EVERY
    budget.deadline = None
    budget.made = 0


def tick(cost: int = 1) -> None:
    budget = _budget
    budget.ticks += cost
    if budget.ticks >= budget.next_check:
        budget.next_check = budget.ticks + _CHECK_EVERY
        now = time.thread_time()
        if budget.deadline is None:
            budget.deadline = now + MAX_RENDER_SECONDS
        elif now > budget.deadline:
            raise TemplateError(
                f"the template ran for over {MAX_RENDER_SECONDS:g} s of CPU time, the limit "
                "of one render (a loop over too many items?)"
            )


def _made(size: int) -> None:
    budget = _budget
    budget.made += size
    if budget.made > MAX_RENDER_MADE:
        raise TemplateError(
            f"the template made over {MAX_RENDER_MADE:,} characters in all (texts and lists "
            "it threw away included), the limit of one render"
        )
    if size > 4096:
        tick(size >> 12)


def _too_big(size: int, what: str) -> TemplateError:
    return TemplateError(
        f"the template would make {what} of {size:,} characters, over the limit of "
        f"{MAX_RENDER_CHARS:,} per render"
    )


def need(size: int, what: str) -> None:
    """Refuse to make something of ``size`` characters or items."""
    if size > MAX_RENDER_CHARS:
        raise _too_big(size, what)


def weight(value: Any, memo: dict[int, int] | None = None) -> int:
    """About how many characters ``value`` takes as text: a string its length, a list or
    mapping its items plus theirs (a list repeated inside another counts each time; each
    distinct object is read once). Stops counting past the limit."""
    if isinstance(value, str):
        return len(value)
    if not isinstance(value, (list, tuple, dict)):
        return 1
    memo = {} if memo is None else memo
    key = id(value)
    if key in memo:
        return memo[key]
    memo[key] = 0  # a cycle counts once
    total = len(value)
    items = [*value.keys(), *value.values()] if isinstance(value, dict) else value
    for item in items:
        if isinstance(item, (str, list, tuple, dict)):
            total += weight(item, memo)
            if total > MAX_RENDER_CHARS:
                break
    memo[key] = total
    return total


def checked(value: Any, what: str) -> Any:
    """``value``, after counting its size (a text or list over the limit is refused)."""
    if isinstance(value, (str, list)):
        size = len(value)
        need(size, what)
        _made(size)
    return value


_SPEC = re.compile(r"^(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[_,]?(?:\.(\d+))?")
_PRINTF = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+)?)?[hlL]?([a-zA-Z%])")


def _spec_width(spec: str) -> int:
    """The width or precision of a ``str.format`` field's spec, whichever is larger."""
    match = _SPEC.match(spec)
    numbers = [g for g in match.groups() if g] if match else []
    if any(len(g) > 9 for g in numbers):
        return MAX_RENDER_CHARS + 1
    return max(map(int, numbers), default=0)


def printf_size(fmt: str, values: Any) -> int:
    """An upper bound of the length of ``fmt % values`` (each conversion counted as wide as
    its width or the largest value)."""
    if isinstance(values, dict):
        args = list(values.values())
    elif isinstance(values, tuple):
        args = list(values)
    else:
        args = [values]
    widest = max((weight(a) for a in args), default=0)
    ints = [a for a in args if isinstance(a, int)]
    total = len(fmt)
    for match in _PRINTF.finditer(fmt):
        width, precision, conversion = match.groups()
        if conversion == "%":
            continue
        sizes = [widest]
        for number in (width, precision):
            if number == "*":
                sizes.append(max(ints, default=0))
            elif number:
                sizes.append(int(number) if len(number) < 10 else MAX_RENDER_CHARS + 1)
        total += max(sizes)
        if total > MAX_RENDER_CHARS:
            break
    return total


def _need_bits(bits: int) -> None:
    if bits > MAX_INT_BITS:
        raise TemplateError(f"the template would make a number of over {MAX_INT_BITS:,} bits")


def _check_binop(operator: str, left: Any, right: Any) -> None:
    sequences = (str, list, tuple)
    if operator == "*":
        if isinstance(left, int) and isinstance(right, sequences):
            left, right = right, left
        if isinstance(left, sequences) and isinstance(right, int):
            need(weight(left) * max(right, 0), "a repeated text or list")
        elif isinstance(left, int) and isinstance(right, int):
            _need_bits(left.bit_length() + right.bit_length())
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            _need_bits(max(left.bit_length() - 1, 0) * right)
    elif operator == "+":
        if isinstance(left, sequences) and isinstance(right, sequences):
            memo: dict[int, int] = {}
            need(weight(left, memo) + weight(right, memo), "a joined text or list")
    elif operator == "%" and isinstance(left, str):
        need(printf_size(left, right), "a formatted text")


class _LimitedFormatter(SandboxedFormatter):
    """``str.format`` that refuses a field wider than the limit, or a result over it."""

    def __init__(self, env: Any, **kwargs: Any) -> None:
        super().__init__(env, **kwargs)
        self.made = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        self.made += max(_spec_width(format_spec), weight(value))
        need(self.made, "a formatted text")
        return super().format_field(value, format_spec)


class _LimitedEscapeFormatter(_LimitedFormatter, SandboxedEscapeFormatter):
    pass


_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})


def _check_call(obj: Any, args: tuple, kwargs: dict) -> None:
    owner = getattr(obj, "__self__", None)
    if not isinstance(owner, str):
        return
    name = getattr(obj, "__name__", "")
    if name in _WIDTH_METHODS and args and isinstance(args[0], int):
        need(args[0], f"a text (str.{name})")
    elif name == "expandtabs":
        size = args[0] if args else kwargs.get("tabsize", 8)
        if isinstance(size, int):
            need(len(owner) + owner.count("\t") * size, "a text (str.expandtabs)")
    elif name == "replace" and len(args) >= 2:
        need(_replace_size(owner, *args[:3]), "a text (str.replace)")
    elif name == "join" and args:
        need(_join_size(owner, args[0]), "a joined text")


def _replace_size(text: Any, old: Any, new: Any, count: Any = None) -> int:
    if not (isinstance(text, str) and isinstance(old, str) and isinstance(new, str)):
        return 0
    found = len(text) + 1 if old == "" else text.count(old)
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * (len(new) - len(old))


def _join_size(separator: Any, items: Any) -> int:
    if not isinstance(items, (list, tuple)):
        return 0
    memo: dict[int, int] = {}
    return len(str(separator)) * len(items) + sum(weight(i, memo) for i in items)


class _LimitsExtension(Extension):
    """Hooks the templates' compiled code calls: loops and ``~``."""

    identifier = "flowrun.limits"

    def loop(self, iterable: Any) -> Any:
        count = 0
        for item in iterable:
            count += 1
            if not count & 255:
                tick(256)
            yield item
        tick(count & 255)

    def join(self, *parts: Any) -> str:
        texts = [str(p) for p in parts]
        need(sum(map(len, texts)), "a joined text")
        return "".join(texts)


def _hook(name: str, args: list[nodes.Expr], lineno: int) -> nodes.Call:
    attr = nodes.ExtensionAttribute(_LimitsExtension.identifier, name, lineno=lineno)
    return nodes.Call(attr, args, [], None, None, lineno=lineno)


def _limit_loops(tree: nodes.Node) -> None:
    """Make every ``for`` tick per item and every ``a ~ b`` check its length."""
    for loop in list(tree.find_all(nodes.For)):
        loop.iter = _hook("loop", [loop.iter], loop.lineno)
    for parent in [tree, *tree.find_all(nodes.Node)]:
        for field in parent.fields:
            value = getattr(parent, field, None)
            if isinstance(value, nodes.Concat):
                setattr(parent, field, _hook("join", value.nodes, value.lineno))
            elif isinstance(value, list):
                for i, item in enumerate(value):
                    if isinstance(item, nodes.Concat):
                        value[i] = _hook("join", item.nodes, item.lineno)


def _range(*args: int) -> range:
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise TemplateError(
            f"range() of {len(numbers):,} items, over the limit of {MAX_RANGE:,} items"
        )
    return numbers


def _lipsum(n: int = 5, html: bool = True, min: int = 20, max: int = 100) -> str:  # noqa: A002
    if isinstance(n, int) and isinstance(max, int):
        need(n * max * 12, "a text (lipsum)")
    return generate_lorem_ipsum(n, html, min, max)


class LimitedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with the size and time limits above."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(extensions=[_LimitsExtension], **options)
        self.globals["range"] = _range
        self.globals["lipsum"] = _lipsum
        self.filters.update(
            {name: _guarded(name, FILTERS[name]) for name in FILTERS if name in self.filters}
        )

    def _generate(self, source: Any, name: Any, filename: Any, defer_init: bool = False) -> Any:
        _limit_loops(source)
        return super()._generate(source, name, filename, defer_init)

    def concat(self, parts: Any) -> str:  # type: ignore[override]
        """Join the output of a render, a block or a macro, stopping at the limit."""
        texts = list(parts)  # references: what they point to was counted when it was made
        made = sum(map(len, texts))
        need(made, "an output")
        _made(made)
        return "".join(texts)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        tick()
        _check_binop(operator, left, right)
        return checked(self.binop_table[operator](left, right), "a text or list")

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        tick()
        _check_call(obj, args, kwargs)
        return checked(super().call(context, obj, *args, **kwargs), "a text or list")

    def wrap_str_format(self, value: Any) -> Any:
        """``str.format`` / ``format_map`` through a formatter that counts what it makes."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text: str = value.__self__
        is_map = value.__name__ == "format_map"

        def limited(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    return wrapped(*args, **kwargs)  # its TypeError
                args, kwargs = (), args[0]
            formatter = (
                _LimitedEscapeFormatter(self, escape=text.escape)
                if isinstance(text, Markup)
                else _LimitedFormatter(self)
            )
            return type(text)(formatter.vformat(text, args, kwargs))

        return update_wrapper(limited, value)


# -- filters -------------------------------------------------------------------------------


def _center(value: Any, width: Any = 80) -> None:
    if isinstance(width, int):
        need(width, "a text (center)")


def _indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> None:
    pad = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    text = str(s)
    need(len(text) + (text.count("\n") + 1) * pad, "a text (indent)")


def _format(value: Any, *args: Any, **kwargs: Any) -> None:
    if isinstance(value, str):
        need(printf_size(value, kwargs or tuple(args)), "a formatted text (format)")


def _join(value: Any, d: Any = "", attribute: Any = None) -> None:
    if attribute is None:
        need(_join_size(d, value), "a joined text (join)")


def _replace(s: Any, old: Any, new: Any, count: Any = None) -> None:
    need(_replace_size(str(s), old, new, count), "a text (replace)")


def _wordwrap(
    s: Any, width: Any = 79, break_long_words: Any = True, wrapstring: Any = None, *a: Any, **k: Any
) -> None:
    if isinstance(wrapstring, str) and isinstance(width, int):
        text = str(s)
        need(len(text) + (len(text) // max(width, 1) + 1) * len(wrapstring), "a text (wordwrap)")


def _fill(value: Any, count: Any, fill_with: Any = None) -> None:
    if fill_with is not None and isinstance(count, int):
        need(count, "a list (batch)")


def _slice(value: Any, slices: Any, fill_with: Any = None) -> None:
    if isinstance(slices, int):
        need(slices, "a list (slice)")


def _whole(value: Any, *args: Any, **kwargs: Any) -> None:
    need(weight(value), "a text")


def _tojson(value: Any, indent: Any = None) -> None:
    pad = indent if isinstance(indent, int) and indent > 0 else 0
    need(weight(value) * (1 + pad), "a text (tojson)")


def _sum(iterable: Any, attribute: Any = None, start: Any = 0) -> None:
    if isinstance(start, (list, tuple, str)) and isinstance(iterable, (list, tuple)):
        memo: dict[int, int] = {}
        need(weight(start, memo) + sum(weight(i, memo) for i in iterable), "a list (sum)")
        if len(iterable) > 1000:  # sum() copies the list once per item
            raise TemplateError(
                "the template would sum more than 1,000 lists, the limit (sum copies the "
                "list once per item)"
            )


_CHECKS: dict[str, Any] = {
    "center": _center,
    "indent": _indent,
    "format": _format,
    "join": _join,
    "replace": _replace,
    "wordwrap": _wordwrap,
    "batch": _fill,
    "slice": _slice,
    "string": _whole,
    "pprint": _whole,
    "tojson": _tojson,
    "sum": _sum,
}


def _guarded(name: str, func: Any) -> Any:
    """``func`` with the size check of filter ``name`` before it and the result's after."""
    check = _CHECKS.get(name)
    pass_arg = getattr(func, "jinja_pass_arg", None)
    skip = 0 if pass_arg is None else 1

    def filter_(*args: Any, **kwargs: Any) -> Any:
        tick()
        if check is not None:
            check(*args[skip:], **kwargs)
        return checked(func(*args, **kwargs), f"a text or list ({name})")

    update_wrapper(filter_, func)
    if pass_arg is not None:
        filter_.jinja_pass_arg = pass_arg  # type: ignore[attr-defined]
    return filter_


def guard_filter(name: str, func: Any) -> Any:
    """A filter this module adds (``tojson``...) wrapped like Jinja's own."""
    return _guarded(name, func)
