"""Templates: native single-expression values, reference discovery and sandboxed rendering.

A template that only places values (``{{ inputs.q }}``, ``{{ steps.a.output }}`` in text) is
read and rendered by ``simple_templates``, without Jinja; every other one by
``jinja_templates`` (Jinja's sandbox with flowrun's limits), imported on first use. Both
give the same values and references; ``simple_templates`` hands over whatever it cannot
decide, so errors are always Jinja's.

Values put in the context (inputs, step outputs) are data: they are never parsed as
templates, so an input containing ``{{ 7*7 }}`` stays that literal text.
"""

from __future__ import annotations

import json
from typing import Any

from flowrun.errors import TemplateError as TemplateError
from flowrun.format import simple_templates as simple
from flowrun.format.simple_templates import SCOPE_NAMES as SCOPE_NAMES
from flowrun.format.simple_templates import STEP_ATTRIBUTES as STEP_ATTRIBUTES
from flowrun.format.simple_templates import References


def is_template(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value or "{#" in value)


def gives_text(source: str) -> bool:
    """Whether a template always renders to text (it is not one lone ``{{ expression }}``)."""
    parsed = simple.parse(source)
    if parsed is not None:
        return not parsed.lone
    from flowrun.format import jinja_templates

    return jinja_templates.gives_text(source)


def check_template(source: str) -> References:
    """Parse ``source`` and return what it references; raises ``TemplateError`` on bad syntax."""
    parsed = simple.parse(source)
    if parsed is not None:
        return simple.references(parsed)
    from flowrun.format import jinja_templates

    return jinja_templates.analyse(source)


def references_in(value: Any) -> References:
    """The union of references of every template string inside ``value`` (nested dicts/lists)."""
    steps: set[str] = set()
    inputs: set[str] = set()
    names: set[str] = set()
    attrs: list[tuple[str, str]] = []
    whole: int | None = None
    computed: int | None = None
    for text in iter_strings(value):
        if is_template(text):
            refs = check_template(text)
            steps |= refs.steps
            inputs |= refs.inputs
            names |= refs.names
            attrs.extend(refs.step_attributes)
            whole = whole or refs.whole_steps
            computed = computed or refs.computed_steps
    return References(
        frozenset(steps), frozenset(inputs), frozenset(names), tuple(attrs), whole, computed
    )


def iter_strings(value: Any):
    """Every string inside a nested structure of dicts and lists."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from iter_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from iter_strings(v)


def render(source: Any, context: dict[str, Any]) -> Any:
    """Render a template string; a lone ``{{ expr }}`` keeps the expression's native type.

    Non-strings and strings without template syntax are returned unchanged; dicts and
    lists are rendered item by item.
    """
    if type(source) is not str:
        if isinstance(source, dict):
            return {k: render(v, context) for k, v in source.items()}
        if isinstance(source, list):
            return [render(v, context) for v in source]
    if not is_template(source):
        return source
    parsed = simple.parse(source)
    if parsed is not None:
        value = simple.render(parsed, context)
        if value is not simple.NOT_SIMPLE:
            return value
    from flowrun.format import jinja_templates

    return jinja_templates.render(source, context)


def render_text(source: str, context: dict[str, Any]) -> str:
    """Render to text whatever the expression's type (for prompts and messages)."""
    value = render(source, context)
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False)
