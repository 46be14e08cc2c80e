"""A template cannot take gigabytes or minutes: each render is bounded in size and CPU time.

Each hostile template used to take 3-5 GB and 12-30 s (or never finish); now the run fails
at once (exit 1) with one line naming the step and the limit, and no model is called.
"""

from __future__ import annotations

import json

import pytest

from flowrun.format.sandbox import MAX_RENDER_CHARS
from tests.helpers import flowrun

SIZE = "over the limit of 10,000,000 per render"
TIME = (
    "the template ran for over 0.5 s of CPU time, the limit of one render "
    "(a loop over too many items?)"
)


def _workflow(tmp_path, prompt: str):
    path = tmp_path / "wf.yaml"
    path.write_text(
        "version: 1\nname: hostile\ndefaults: {model: gpt-4o-mini}\n"
        "inputs:\n  text: {type: string, default: ''}\n"
        f"steps:\n  draft:\n    type: chat\n    prompt: {json.dumps(prompt)}\n"
    )
    return path


def _failed_step_line(res) -> str:
    assert res.code == 1, res.output
    assert "Traceback" not in res.stderr and "internal error" not in res.stderr
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    return errors[0]


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("{{ 'x' | center(10**9) }}", "a text (center) of 1,000,000,000 characters, " + SIZE),
        ("{{ 'x' | indent(10**9) }}", "a text (indent) of 1,000,000,001 characters, " + SIZE),
        (
            "{{ '%*s' | format(10**9, 'x') }}",
            "a formatted text (format) of 1,000,000,003 characters, " + SIZE,
        ),
        (
            "{{ '{:>1000000000}'.format('x') }}",
            "a formatted text of 10,000,001 characters, " + SIZE,
        ),
        ("{{ 'x'.ljust(10**9) }}", "a text (str.ljust) of 1,000,000,000 characters, " + SIZE),
        ("{{ 'x' * 10**9 }}", "a repeated text or list of 1,000,000,000 characters, " + SIZE),
        ("{{ [1] * 10**9 }}", "a repeated text or list of 1,000,000,000 characters, " + SIZE),
        (
            "{{ range(10**9) | list }}",
            "range() of 1,000,000,000 items, over the limit of 100,000 items",
        ),
        (
            "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
            "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
            "a joined text of 16,777,216 characters, " + SIZE,
        ),
        (
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "",  # the output limit or the time limit, whichever this machine reaches first
        ),
        ("{% for i in range(10**5) %}{% for j in range(10**5) %}{% endfor %}{% endfor %}", TIME),
        (
            "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(60) }}",
            TIME,
        ),
        ("{{ 10 ** (10 ** 10) }}", "the template would make a number of over 100,000 bits"),
    ],
    ids=[
        "center",
        "indent",
        "format-star",
        "str-format-width",
        "ljust",
        "text-times",
        "list-times",
        "range",
        "doubling",
        "nested-loops-output",
        "nested-loops",
        "macro-fan-out",
        "power",
    ],
)
def test_a_hostile_template_fails_at_once_naming_the_step(tmp_path, server, prompt, message):
    res = flowrun("run", _workflow(tmp_path, prompt))
    line = _failed_step_line(res)
    assert line.startswith("error: step 'draft' failed: ")
    if message == "":
        assert line.endswith((SIZE, TIME)), line
    elif message.startswith("the template") or message.startswith("range()"):
        assert line == f"error: step 'draft' failed: {message}"
    else:
        assert line == f"error: step 'draft' failed: the template would make {message}"
    assert server.requests == []


def test_a_large_input_inside_the_limit_renders_whole(tmp_path, server):
    """The limit is far above a real prompt: an input of a million characters goes through
    (loops, filters and operators on it included) and reaches the model in full."""
    text = tmp_path / "doc.txt"
    text.write_text("word " * 200_000)  # 1,000,000 characters
    prompt = (
        "{% for part in [inputs.text] %}{{ part | trim | replace('word', 'w0rd') }}{% endfor %}"
        "{{ '-' * 10 }}{{ ' end' | indent(4) }}"
    )
    path = _workflow(tmp_path, prompt)
    path.write_text(path.read_text().replace("gpt-4o-mini", "gpt-4.1"))  # a 1M-token window
    res = flowrun("run", path, "-i", f"text=@{text}")
    assert res.code == 0, res.output
    sent = server.requests[0].body["messages"][-1]["content"]
    assert sent == ("w0rd " * 200_000).strip() + "-" * 10 + " end"
    assert len(sent) < MAX_RENDER_CHARS


def test_a_limit_in_an_output_template_names_the_output(tmp_path, server):
    path = _workflow(tmp_path, "hi")
    path.write_text(path.read_text() + "outputs:\n  big: \"{{ 'x' | center(10**9) }}\"\n")
    res = flowrun("run", path)
    assert res.code == 1, res.output
    assert (
        "error: output 'big': the template would make a text (center) of 1,000,000,000 "
        "characters, " + SIZE
    ) in res.stderr
    assert "Traceback" not in res.stderr


def test_a_macro_the_template_defines_is_not_an_unknown_name(tmp_path, server):
    """validate used to call a macro's own name unknown ('unknown name 'f' in prompt')."""
    prompt = "{% macro twice(s) %}{{ s }}{{ s }}{% endmacro %}{{ twice('ab') }}"
    path = _workflow(tmp_path, prompt)
    assert flowrun("validate", path).code == 0
    res = flowrun("run", path)
    assert res.code == 0, res.output
    assert server.requests[0].body["messages"][-1]["content"] == "abab"
