"""Hostile files and arguments, command by command: exit 2 with one line saying where, never a
traceback, an internal error, a hang, or the text of a file the user named by mistake."""

from __future__ import annotations

import os

import pytest

from tests.helpers import WORKFLOWS, flowrun

SUMMARIZE = str(WORKFLOWS / "summarize.yaml")
SECRET = "hunter2-correct-horse"  # not shaped like an API key: redaction would not catch it
DEEP = "[" * 3000 + "]" * 3000
HEAD = "version: 1\nname: t\ndefaults: {model: gpt-4o-mini}\n"


@pytest.fixture
def files(tmp_path, monkeypatch):
    """The hostile files, in the current directory."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "deep.json").write_text('{"text": ' + DEEP + "}")
    (tmp_path / "deep.yaml").write_text("text: " + "[" * 150 + "]" * 150 + "\n")
    (tmp_path / "deep-block.yaml").write_text(
        "text:\n" + "".join(" " * i + "a:\n" for i in range(1, 300)) + " " * 300 + "b: 1\n"
    )
    (tmp_path / "deep.jsonl").write_text('{"text": ' + DEEP + '}\n{"text": "fine"}\n')
    (tmp_path / "secret.env").write_text(f"DB_PASSWORD={SECRET}\n")
    (tmp_path / "secret.yaml").write_text(f"password: {SECRET}\n  oops: [\n")
    (tmp_path / "secret.json").write_text('{"password": "' + SECRET + '",,}')
    (tmp_path / "prices-deep.json").write_text(DEEP)
    (tmp_path / "wf-deep.yaml").write_text(
        HEAD + "steps:\n  a:\n    type: chat\n    prompt: hi\n    extra: " + DEEP + "\n"
    )
    if hasattr(os, "mkfifo"):
        os.mkfifo(tmp_path / "fifo.json")
        os.mkfifo(tmp_path / "fifo.yaml")
    return tmp_path


# (command line, the one error line; "..." ends a prefix)
CASES = [
    (
        ["run", SUMMARIZE, "--mock", "--inputs-file", "deep.json"],
        "error: the inputs file deep.json: nested more than 100 levels deep (line 1, column 109)",
    ),
    (
        ["run", SUMMARIZE, "--mock", "--inputs-file", "deep.yaml"],
        "error: the inputs file deep.yaml: nested more than 100 levels deep, the limit of a "
        "file flowrun reads (line 1, column 106)",
    ),
    (
        ["estimate", SUMMARIZE, "--inputs-file", "deep-block.yaml"],
        "error: the inputs file deep-block.yaml: nested more than 100 levels deep, the limit "
        "of a file flowrun reads (line 101, column 101)",
    ),
    (
        ["run", SUMMARIZE, "--mock", "--inputs-file", "secret.yaml"],
        "error: the inputs file secret.yaml: not valid YAML: mapping values are not allowed "
        "here; quote a value that contains ': ' (line 2, column 7)",
    ),
    (
        ["run", SUMMARIZE, "--mock", "--inputs-file", "secret.json"],
        "error: the inputs file secret.json: not valid JSON: Expecting property name enclosed "
        "in double quotes (line 1, column 38)",
    ),
    (
        ["run", SUMMARIZE, "--mock", "--batch", "deep.jsonl", "-o", "out.jsonl"],
        "error: deep.jsonl:1: nested more than 100 levels deep",
    ),
    (["validate", "wf-deep.yaml"], "wf-deep.yaml:8:112: nested more than 100 levels deep, ..."),
    (["graph", "wf-deep.yaml"], "wf-deep.yaml:8:112: nested more than 100 levels deep, ..."),
    (["estimate", "wf-deep.yaml"], "wf-deep.yaml:8:112: nested more than 100 levels deep, ..."),
    (
        ["estimate", SUMMARIZE, "-i", "text=x", "--prices", "prices-deep.json"],
        "error: the price file prices-deep.json is nested too deep",
    ),
    (
        ["estimate", SUMMARIZE, "-i", "text=x", "--prices", "fifo.json"],
        "error: cannot read the price file fifo.json: not a regular file (a pipe, device or "
        "socket is not read)",
    ),
    (
        ["run", SUMMARIZE, "--mock", "--batch", "fifo.json", "-o", "out.jsonl"],
        "error: records file fifo.json is not a regular file (a pipe, device or socket is not "
        "read)",
    ),
    *[
        (
            [command, "fifo.yaml", *extra],
            "fifo.yaml:1:1: cannot read the file: not a regular file (a pipe, device or socket "
            "is not read)",
        )
        for command, *extra in (["run", "--mock"], ["graph"], ["estimate"], ["validate"])
    ],
    (
        ["run", SUMMARIZE, "--mock", "--max-cost", "1e400"],
        "error: Invalid value for '--max-cost': inf is not a budget: ...",
    ),
    (
        ["resume", "some-run", "--max-cost", "nan"],
        "error: Invalid value for '--max-cost': nan is not a budget: ...",
    ),
    (
        ["runs", "prune", "--older-than", "1000000000000000d"],
        "error: --older-than '1000000000000000d': give an age under 1,000 years",
    ),
    (
        ["runs", "list", "--since", "99999999999999w"],
        "error: --since '99999999999999w': give an age like 7d or 12h, or a date like 2026-12-01",
    ),
    (
        ["runs", "prune", "--keep", str(10**20)],
        f"error: Invalid value for '--keep': {10**20} is not in the range 0<=x<=1000000000.",
    ),
    (
        ["resume", "some-run", "--concurrency", str(10**20)],
        f"error: Invalid value for '--concurrency': {10**20} is not in the range ...",
    ),
    (
        ["run", SUMMARIZE, "--batch", "x.jsonl", "--rpm", str(10**20)],
        f"error: Invalid value for '--rpm': {10**20} is not in the range 1<=x<=1000000000.",
    ),
    (
        ["init", "x" * 300],
        f"error: cannot write {'x' * 300}.yaml: File name too long",
    ),
    (
        ["init", "ok", "--dir", "secret.env/sub"],
        "error: cannot write secret.env/sub: Not a directory",
    ),
    (
        ["view", "--port", "99999"],
        "error: Invalid value for '--port': 99999 is not in the range 0<=x<=65535.",
    ),
]


@pytest.mark.parametrize(
    ("args", "line"), CASES, ids=[" ".join(a[:20] for a in c[0][:4]) for c in CASES]
)
def test_a_hostile_argument_is_one_line_and_exit_2(files, args, line):
    if any(a.startswith("fifo.") for a in args) and not hasattr(os, "mkfifo"):
        pytest.skip("named pipes")
    res = flowrun(*args)
    assert res.code == 2, res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    first = res.stderr.strip().splitlines()[0]
    if line.endswith("..."):
        assert first.startswith(line.removesuffix("...")), first
    else:
        assert first == line
    assert SECRET not in res.output


def test_an_input_value_too_deep_or_too_large_is_exit_2(tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        HEAD + "inputs:\n  n: {type: number}\n  l: {type: array}\n"
        "steps:\n  a:\n    type: chat\n    prompt: '{{ inputs.n }} {{ inputs.l }}'\n"
    )
    res = flowrun("run", wf, "--mock", "-i", "n=1", "-i", f"l={DEEP}")
    assert res.code == 2 and res.stderr.splitlines()[0] == (
        "error: input 'l': nested more than 100 levels deep (line 1, column 101)"
    )
    res = flowrun("run", wf, "--mock", "-i", "n=1e400", "-i", "l=[]")
    assert res.code == 2
    assert res.stderr.splitlines()[0] == "error: input 'n' must be of type number, got '1e400'"
    secret = tmp_path / "secret.env"
    secret.write_text(f"DB_PASSWORD={SECRET}\n")
    res = flowrun("run", wf, "--mock", "-i", f"n=@{secret}", "-i", "l=[]")
    assert res.code == 2
    assert res.stderr.splitlines()[0] == "error: input 'n' must be of type number"


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        (
            "s.env",
            f"DB_PASSWORD={SECRET}\n",
            "is not a valid JSON schema: the file holds text, not a schema (a mapping) "
            "(line 1, column 1)",
        ),
        (
            "s.json",
            '{"type": "object", "properties": {"a": {"type": "' + SECRET + '"}}}',
            "is not a valid JSON schema: the type is not a JSON schema type (use one of: array, "
            "boolean, integer, null, number, object, string) (at properties/a/type, line 1, "
            "column 49)",
        ),
        (
            "s.yaml",
            f"type: object\nproperties:\n  a: {{type: [{SECRET}]}}\n",
            "is not a valid JSON schema: a list that breaks the meta-schema's 'anyOf' rule "
            "(at properties/a/type, line 3, column 13)",
        ),
        (
            "s.yaml",
            f"type: object\ndescription: {SECRET}\n  bad: [\n",
            "file s.yaml is not valid YAML: mapping values are not allowed here; quote a value "
            "that contains ': ' (line 3, column 6)",
        ),
        (
            "s.json",
            '{"title": "' + SECRET + '",}',
            "file s.json is not valid JSON: Expecting property name enclosed in double quotes "
            "(line 1, column 35)",
        ),
        ("s.json", DEEP, "file s.json is nested more than 100 levels deep (line 1, column 101)"),
    ],
    ids=["env-file", "bad-type", "bad-rule", "broken-yaml", "broken-json", "deep"],
)
def test_a_schema_file_is_never_quoted_in_an_error(tmp_path, name, text, message):
    (tmp_path / name).write_text(text)
    wf = tmp_path / "wf.yaml"
    wf.write_text(HEAD + f"steps:\n  a:\n    type: extract\n    prompt: x\n    schema: {name}\n")
    res = flowrun("validate", wf)
    assert res.code == 2, res.output
    assert SECRET not in res.output
    source = f"schema {name} " if message.startswith("is") else "schema "
    assert res.stderr.strip() == f"{wf}:8:13: step 'a': {source}{message}"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes")
def test_a_schema_file_that_is_a_fifo_is_refused_not_read(tmp_path):
    os.mkfifo(tmp_path / "s.json")
    wf = tmp_path / "wf.yaml"
    wf.write_text(HEAD + "steps:\n  a:\n    type: extract\n    prompt: x\n    schema: s.json\n")
    res = flowrun("validate", wf)  # reading it would block forever
    assert res.code == 2
    assert res.stderr.strip() == (
        f"{wf}:8:13: step 'a': schema file s.json: cannot read it: not a regular file "
        "(a pipe, device or socket is not read)"
    )


@pytest.mark.parametrize("tag", ["include 'part.txt'", "import 'macros.j2' as m", "extends 'base'"])
def test_validate_refuses_a_template_that_reads_another_file(tmp_path, tag):
    """It passed validate and failed when the step ran; now validate names file:line:col."""
    (tmp_path / "part.txt").write_text("included text")
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        HEAD + f"steps:\n  a:\n    type: chat\n    prompt: |\n      Hello\n      {{% {tag} %}}\n"
    )
    res = flowrun("validate", wf)
    assert res.code == 2
    word = tag.split()[0]
    assert res.stderr.strip() == (
        f"{wf}:9:7: step 'a': template error in prompt: {{% {word} %}} is not supported: a "
        "template cannot read other files (put the text in the workflow, or pass it as an "
        "input: -i name=@file)"
    )


def test_validate_refuses_a_foreach_that_cannot_give_a_list(tmp_path):
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        HEAD + "steps:\n"
        "  a: {type: chat, foreach: 5, prompt: '{{ item }}'}\n"
        "  b: {type: chat, foreach: 'abc', prompt: '{{ item }}'}\n"
        "  c: {type: chat, foreach: {k: 1}, prompt: '{{ item }}'}\n"  # its [key, value] pairs
        "  d: {type: chat, foreach: 'items: {{ [1] }}', prompt: '{{ item }}'}\n"
        "  e: {type: chat, foreach: [1, 2], prompt: '{{ item }}'}\n"
        "  f: {type: chat, foreach: '{{ [1, 2] }}', prompt: '{{ item }}'}\n"
    )
    res = flowrun("validate", wf)
    assert res.code == 2
    must = "foreach must be a list (or a mapping), or one {{ expression }} giving one;"
    assert res.stderr.strip().splitlines() == [
        f"{wf}:5:28: step 'a': {must} got a number",
        f"{wf}:6:28: step 'b': {must} got text",
        f"{wf}:8:28: step 'd': foreach renders to text here, never a list: write the list "
        'expression alone, as foreach: "{{ inputs.items }}"',
    ]


def test_a_very_large_file_is_refused_for_its_size_not_for_aliases(tmp_path):
    lines = [HEAD.rstrip("\n"), "steps:"]
    for i in range(10_000):
        lines += [f"  s{i}:", "    type: chat", "    prompt: hi", "    temperature: 0.5"]
        lines += ["    max_completion_tokens: 10"]
    wf = tmp_path / "wf.yaml"
    wf.write_text("\n".join(lines) + "\n")
    res = flowrun("validate", wf)
    assert res.code == 2
    assert res.stderr.strip() == (
        f"{wf}:5:3: this value holds more than 100,000 values (keys, items and scalars), the "
        "limit of a file flowrun reads; split the file"
    )
    assert "alias" not in res.stderr


def test_a_nul_character_in_a_file_name_is_one_line(tmp_path, monkeypatch, server):
    """YAML can write a NUL ("\\0") into a file name and the Python API can pass one: the OS
    refuses such names, and flowrun says so at the name instead of an internal error."""
    from flowrun.api import run_workflow
    from flowrun.errors import WorkflowInvalid

    monkeypatch.chdir(tmp_path)
    step = "steps:\n  a:\n    type: chat\n    prompt: hi\n"
    (tmp_path / "schema.yaml").write_text(HEAD + step + '    output_schema: "x\\0.json"\n')
    res = flowrun("validate", "schema.yaml")
    assert res.code == 2, res.output
    assert res.stderr.strip() == (
        "schema.yaml:8:20: step 'a': output_schema file not found: 'x\\x00.json' has a NUL "
        "character"
    )
    (tmp_path / "image.yaml").write_text(HEAD + step + '    images: ["a\\0.png"]\n')
    res = flowrun("run", "image.yaml")
    assert res.code == 1 and "Traceback" not in res.output and "internal error" not in res.output
    assert "error: step 'a' failed: image not found: 'a\\x00.png' has a NUL character" in (
        res.stderr
    )
    assert server.requests_to("/chat/completions") == []
    with pytest.raises(WorkflowInvalid, match="no such file"):
        run_workflow("wf\0.yaml")
