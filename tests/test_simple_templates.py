"""Templates that only place values are read and rendered without Jinja: the values, the
references and the text they give are Jinja's own, and everything else goes to Jinja."""

from __future__ import annotations

import pytest

from flowrun.format import jinja_templates, simple_templates
from flowrun.format.templating import TemplateError, check_template, gives_text, render

CTX = {
    "inputs": {
        "q": "hello",
        "n": 3,
        "ratio": 0.5,
        "flag": False,
        "nothing": None,
        "tags": ["a", "b"],
        "meta": {"lang": "en", "deep": {"x": 1}},
        "items": [1, 2],  # a key named like a dict method: the data wins
        "braces": "{{ 7*7 }}",  # data, never a template
        "big": "x" * 600_000,
    },
    "steps": {
        "draft": {"output": "a draft", "skipped": False, "usage": {"total_tokens": 5}},
        "classify": {"output": {"category": "bug"}, "status": "succeeded"},
    },
    "item": {"name": "one"},
    "index": 0,
}

SIMPLE = [
    "{{ inputs.q }}",
    "{{inputs.q}}",
    "  {{ inputs.tags }}\n",
    "{{ inputs.n }}",
    "{{ inputs.ratio }}",
    "{{ inputs.flag }}",
    "{{ inputs.nothing }}",
    "{{ inputs.meta }}",
    "{{ inputs.meta.deep.x }}",
    "{{ inputs.items }}",
    "{{ inputs.braces }}",
    "Say: {{ inputs.q }}",
    "Say: {{ inputs.q }}\n",
    "n={{ inputs.n }} flag={{ inputs.flag }} none={{ inputs.nothing }} tags={{ inputs.tags }}",
    "{{ inputs.meta }} and {{ steps.classify.output }}",
    "Join: {{ steps.draft.output }} / {{ steps.classify.output.category }}",
    "{{ steps.draft.usage.total_tokens }}",
    "{{ item.name }}: {{ inputs.q }}",
    "a }} b {{ inputs.q }}}",
    "{ {{ inputs.q }} }",
    "line one\n\n{{\n  inputs.q\n}}\nline three\n",
    "\t{{ inputs.q }}\t",
    "{{ inputs.braces }} {{ inputs.q }}",
    "{{ inputs.big }}{{ inputs.big }}",  # over the length kept here: Jinja renders it
    # not read here (a key that is not there, a scope that is not a mapping): Jinja's error
    "{{ inputs.missing }}",
    "text {{ inputs.q.upper }}",
    "{{ steps.nope.output }}",
    "{{ index.x }}",
]

NOT_SIMPLE = [
    "{{ inputs['q'] }}",
    "{{ inputs.q | upper }}",
    "{{ inputs.n * 2 }}",
    "{{- inputs.q }}",
    "{{ inputs.q -}} x",
    "{{ inputs.q }}{# a comment #}",
    "{% if inputs.flag %}yes{% endif %}",
    "{{{ inputs.q }}",
    "{{ inputs }}",
    "{{ steps }}",
    "{{ none }}",
    "{{ loop.index }}",
    "{{ inputs . q }}",
    "{{ inputs.q }}\r\n",
    "{{ inputs.0 }}",
    "{{ inputs.q }",
]


def _jinja(source: str) -> object:
    try:
        return ("value", jinja_templates.render(source, CTX))
    except TemplateError as exc:
        return ("error", str(exc))


def _ours(source: str) -> object:
    try:
        return ("value", render(source, CTX))
    except TemplateError as exc:
        return ("error", str(exc))


@pytest.mark.parametrize("source", SIMPLE + NOT_SIMPLE)
def test_a_template_gives_what_jinja_gives(source: str) -> None:
    kind, value = _ours(source)
    assert (kind, value) == _jinja(source)
    assert type(value) is type(_jinja(source)[1])


@pytest.mark.parametrize("source", SIMPLE)
def test_a_template_that_only_places_values_is_read_without_jinja(source: str) -> None:
    parsed = simple_templates.parse(source)
    assert parsed is not None
    assert check_template(source) == jinja_templates.analyse(source)
    assert gives_text(source) == jinja_templates.gives_text(source)


@pytest.mark.parametrize("source", NOT_SIMPLE)
def test_any_other_template_is_left_to_jinja(source: str) -> None:
    assert simple_templates.parse(source) is None


def test_values_that_only_jinja_can_place_are_left_to_it() -> None:
    parsed = simple_templates.parse("{{ inputs.q.upper }}")
    assert parsed is not None
    assert simple_templates.render(parsed, CTX) is simple_templates.NOT_SIMPLE
    assert render("{{ inputs.q.upper }}", CTX) != simple_templates.NOT_SIMPLE
