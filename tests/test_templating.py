"""Templating: native single-expression values, strict undefined names, the sandbox, data that
is never rendered twice, and the references (dependencies) read from the template AST."""

from __future__ import annotations

import textwrap

import pytest

from flowrun.format.loader import load_workflow_text
from flowrun.format.templating import TemplateError, check_template, render, render_text

CTX = {
    "inputs": {
        "n": 3,
        "ratio": 0.5,
        "flag": False,
        "nothing": None,
        "tags": ["a", "b"],
        "meta": {"lang": "en"},
        "text": "hello",
        # Inputs whose names are also dict methods: the data must win.
        "items": [1, 2],
        "keys": "k",
    },
    "steps": {"classify": {"output": {"category": "bug", "urgent": True}, "skipped": False}},
}


# --- native values -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.tags }}", ["a", "b"]),
        ("{{ inputs.meta }}", {"lang": "en"}),
        ("{{ inputs.n }}", 3),
        ("{{ inputs.ratio }}", 0.5),
        ("{{ inputs.flag }}", False),
        ("{{ inputs.nothing }}", None),
        ("{{ none }}", None),
        ("{{ [1, 2] + [3] }}", [1, 2, 3]),
        ("{{ {'a': inputs.n} }}", {"a": 3}),
        ("{{ inputs.n * 2 }}", 6),
        ("{{ inputs.tags | length > 1 }}", True),
        ("{{ steps.classify.output.urgent }}", True),
        ("{{ steps.classify.output }}", {"category": "bug", "urgent": True}),
        # Whitespace around the one expression (as in a `|` block) still gives the value.
        ("  {{ inputs.tags }}\n", ["a", "b"]),
        # A key wins over a dict method of the same name.
        ("{{ inputs.items }}", [1, 2]),
        ("{{ inputs['items'] }}", [1, 2]),
        ("{{ inputs.keys }}", "k"),
        ("{{ inputs.meta | tojson }} ", '{"lang": "en"}'),
        # Decided from the parsed template, not its text: braces inside the expression are fine.
        ("{{ {'a': {'b': 1}} }}", {"a": {"b": 1}}),
        ("{{ {'x': [inputs.meta]} }}", {"x": [{"lang": "en"}]}),
        ("{{ '}}' }}", "}}"),
        ("{{ inputs.n }}{# a comment #}", 3),
        ("{{- inputs.tags -}}", ["a", "b"]),
    ],
)
def test_a_lone_expression_keeps_its_native_type(template, expected):
    value = render(template, CTX)
    assert value == expected
    assert type(value) is type(expected)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("n={{ inputs.n }}", "n=3"),
        ("{{ inputs.n }}{{ inputs.n }}", "33"),
        ("{{ inputs.n }} and {{ inputs.tags }}", "3 and ['a', 'b']"),
        ("{% if inputs.flag %}yes{% else %}no{% endif %}", "no"),
        ("{{ inputs.tags | join(', ') }}!", "a, b!"),
        ("json: {{ inputs.meta | tojson }}", 'json: {"lang": "en"}'),
        ("{% for t in inputs.tags %}{{ loop.index }}{{ t }}{% endfor %}", "1a2b"),
        ("Line 1\n{{ inputs.text }}\n", "Line 1\nhello\n"),
        ("{{ {'a': 1} }} and {{ '}}' }}", "{'a': 1} and }}"),
        ("{% set x = 1 %}{{ x }}", "1"),
    ],
)
def test_mixed_text_stays_text(template, expected):
    assert render(template, CTX) == expected


def test_strings_without_template_syntax_and_non_strings_are_returned_unchanged():
    assert render("plain text with { braces }", CTX) == "plain text with { braces }"
    assert render(5, CTX) == 5
    assert render(None, CTX) is None


def test_dicts_and_lists_are_rendered_item_by_item():
    value = render({"a": "{{ inputs.n }}", "b": ["{{ inputs.tags }}", "x{{ inputs.n }}"]}, CTX)
    assert value == {"a": 3, "b": [["a", "b"], "x3"]}


def test_tojson_is_plain_json_for_prompts():
    ctx = {"inputs": {"d": {"z": "a < b & 'c'", "a": "café"}}, "steps": {}}
    assert render("{{ inputs.d | tojson }}", ctx) == '{"z": "a < b & \'c\'", "a": "café"}'
    assert render("{{ inputs.d | tojson(indent=1) }}", ctx).startswith('{\n "z"')


def test_render_text_turns_values_into_text():
    assert render_text("{{ inputs.tags }}", CTX) == '["a", "b"]'
    assert render_text("{{ inputs.nothing }}", CTX) == ""
    assert render_text("{{ inputs.n }}", CTX) == "3"
    assert render_text("{{ inputs.text }}", CTX) == "hello"


# --- data is never rendered again ---------------------------------------------------


LOOKS_LIKE_A_TEMPLATE = "{{ 7*7 }} {% if true %}x{% endif %}"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ inputs.text }}", LOOKS_LIKE_A_TEMPLATE),
        ("Say: {{ inputs.text }}", "Say: " + LOOKS_LIKE_A_TEMPLATE),
        ("{{ inputs.text | upper }}", "{{ 7*7 }} {% IF TRUE %}X{% ENDIF %}"),
        ("{{ [inputs.text] }}", [LOOKS_LIKE_A_TEMPLATE]),
    ],
)
def test_an_input_that_looks_like_a_template_stays_literal(template, expected):
    ctx = {"inputs": {"text": LOOKS_LIKE_A_TEMPLATE}, "steps": {}}
    assert render(template, ctx) == expected


def test_a_step_output_that_looks_like_a_template_stays_literal():
    ctx = {"inputs": {}, "steps": {"a": {"output": "{{ steps.a.output }}"}}}
    assert render("{{ steps.a.output }}", ctx) == "{{ steps.a.output }}"
    assert render("Got: {{ steps.a.output }}", ctx) == "Got: {{ steps.a.output }}"


# --- strict undefined -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "words"),
    [
        ("{{ inputs.missing }}", "missing"),
        ("Hello {{ inputs.missing }}", "missing"),
        ("{{ nope }}", "'nope' is undefined"),
        ("Hi {{ nope }}", "'nope' is undefined"),
        ("{{ steps.absent.output }}", "absent"),
        ("{{ inputs.tags[5] }}", "no element 5"),
        ("{% for x in inputs.missing %}{% endfor %}", "missing"),
    ],
)
def test_undefined_names_are_errors_not_empty_text(template, words):
    with pytest.raises(TemplateError) as info:
        render(template, CTX)
    assert words in str(info.value)


def test_default_filter_still_works_for_optional_values():
    assert render("{{ inputs.missing | default('x') }}", CTX) == "x"
    assert render("{{ inputs.nothing or 'fallback' }}", CTX) == "fallback"


# --- the sandbox ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "template",
    [
        "{{ ''.__class__.__mro__ }}",
        "x {{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ inputs.meta.__class__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{% for c in ''.__class__.__mro__ %}{{ c }}{% endfor %}",
        "{{ inputs.text.format.__globals__ }}",
    ],
)
def test_the_sandbox_blocks_python_internals(template):
    with pytest.raises(TemplateError) as info:
        render(template, CTX)
    assert "unsafe" in str(info.value)


def test_the_sandbox_keeps_data_immutable():
    ctx = {"inputs": {"tags": ["a"], "meta": {"k": 1}}, "steps": {}}
    for template in ("{{ inputs.tags.append('b') }}", "{{ inputs.meta.update({'k': 2}) }}"):
        with pytest.raises(TemplateError):
            render(template, ctx)
    assert ctx["inputs"] == {"tags": ["a"], "meta": {"k": 1}}


def test_the_sandbox_bounds_range():
    with pytest.raises(
        TemplateError, match=r"range\(\) of 1,000,000,000 items, over the limit of 100,000 items"
    ):
        render("{{ range(10**9) | list | length }}", CTX)


# --- syntax errors ---------------------------------------------------------------------


def test_a_syntax_error_carries_its_line_within_the_template():
    with pytest.raises(TemplateError) as info:
        check_template("line one\nline two\n{{ inputs.text | upper }\n")
    assert info.value.lineno == 3
    assert "unexpected '}'" in str(info.value)


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ x | uppper }}", "no filter named 'uppper' (did you mean 'upper'?)"),
        ("{% if x is nmber %}{% endif %}", "no test named 'nmber' (did you mean 'number'?)"),
        ("{% if x %}{{ x | zzz }}{% endif %}", "no filter named 'zzz'"),
        ("{% for x in y %}", "Unexpected end of template"),
    ],
)
def test_unknown_filters_and_tests_are_caught_when_checking(template, message):
    with pytest.raises(TemplateError) as info:
        check_template(template)
    assert message in str(info.value)


# --- references ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "steps"),
    [
        ("{{ steps.a.output }}", {"a"}),
        ("{{ steps['a'].output }}", {"a"}),
        ('{{ steps["a"]["output"] }}', {"a"}),
        ("{{ steps.a.output | default(steps.b.output) }}", {"a", "b"}),
        ("{{ inputs.x | replace('a', steps.c.output) }}", {"c"}),
        ("{% for r in steps.d.output %}{{ r }}{% endfor %}", {"d"}),
        ("{% if steps.e.skipped %}{{ steps.f.output }}{% endif %}", {"e", "f"}),
        ("{{ steps.g.output | map(attribute='x') | join(',') }}", {"g"}),
        ("{{ (steps.h.output or []) | length }}", {"h"}),
        ("{% set s = steps.i.output %}{{ s }}", {"i"}),
        ("{{ [steps.j.output, steps.k.usage] }}", {"j", "k"}),
        ("{{ inputs.x }} no steps here", set()),
    ],
)
def test_step_references_are_read_from_the_ast(template, steps):
    assert check_template(template).steps == steps


def test_input_references_names_and_step_attributes():
    refs = check_template(
        "{% set local = 1 %}{% for t in inputs.tags %}{{ t }}{% endfor %}"
        "{{ inputs['text'] }} {{ steps.a.output }} {{ steps.b.usage }} {{ item }} {{ local }}"
    )
    assert refs.inputs == {"tags", "text"}
    assert refs.names == {"inputs", "steps", "item"}  # `local` and `t` are the template's own
    assert set(refs.step_attributes) == {("a", "output"), ("b", "usage")}


def test_dependencies_come_from_templates_anywhere_in_a_step_plus_needs():
    wf = load_workflow_text(
        textwrap.dedent(
            """\
            version: 1
            name: deps
            defaults: {model: gpt-4o-mini}
            steps:
              a: {type: chat, prompt: A}
              b: {type: chat, prompt: B}
              c: {type: chat, prompt: C}
              d:
                type: chat
                system: "{{ steps.a.output }}"
                messages:
                  - {role: user, content: [{type: text, text: "{{ steps['b'].output }}"}]}
                when: "{{ not steps.a.skipped }}"
                needs: [c]
              e:
                type: tool
                function: json:dumps
                args: {obj: "{{ steps.d.output }}"}
            outputs:
              final: "{{ steps.e.output }}"
            """
        )
    )
    assert wf.dependencies == {
        "a": frozenset(),
        "b": frozenset(),
        "c": frozenset(),
        "d": frozenset({"a", "b", "c"}),
        "e": frozenset({"d"}),
    }
    assert sorted(wf.graph.edges) == [("a", "d"), ("b", "d"), ("c", "d"), ("d", "e")]
