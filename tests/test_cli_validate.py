"""`flowrun validate` on broken workflow files: exit 2, exact FILE:LINE:COL, readable messages.

Each file under tests/broken/ holds one kind of mistake (``many_problems.yaml`` several).
The expected stderr lines are snapshots: a change in what users see is a visible diff here.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, flowrun, flowrun_process

BROKEN = REPO / "tests" / "broken"

# file -> (line, col, exact message, words the message must name)
CASES = {
    "duplicate_key.yaml": (
        8,
        5,
        "duplicate key 'prompt' (first defined on line 7); keep only one",
        ["duplicate", "prompt"],
    ),
    "unknown_key.yaml": (
        8,
        5,
        "unknown key 'promt' in step 'summary' (did you mean 'prompt'?)",
        ["unknown key", "did you mean 'prompt'"],
    ),
    "wrong_type.yaml": (
        9,
        28,
        "step 'summary': max_completion_tokens must be an integer, not 'lots'",
        ["max_completion_tokens", "integer"],
    ),
    "unknown_step_type.yaml": (
        5,
        11,
        "step 'fetch': unknown step type 'http' (expected one of: chat, extract, tool, embed)",
        ["unknown step type", "http"],
    ),
    "version_not_1.yaml": (
        1,
        10,
        "unsupported version 2: this flowrun reads version 1 files; set version: 1",
        ["version"],
    ),
    "broken_yaml.yaml": (
        6,
        13,
        "invalid YAML: found unexpected end of stream while scanning a quoted scalar "
        "that starts here; is a closing quote missing?",
        ["invalid YAML", "quote"],
    ),
    # The error is on the 4th line of the `prompt: |` block, which is line 13 of the file;
    # the column is where that template line starts.
    "jinja_syntax.yaml": (
        13,
        7,
        "step 'summary': template error in prompt: unexpected '}'",
        ["template", "prompt"],
    ),
    "unknown_filter.yaml": (
        10,
        13,
        "step 'shout': template error in prompt: no filter named 'uppercase' "
        "(did you mean 'upper'?)",
        ["filter", "uppercase"],
    ),
    "missing_step.yaml": (
        11,
        13,
        "step 'title' refers to unknown step 'sumary' (did you mean 'summary'?)",
        ["unknown step", "sumary"],
    ),
    "undeclared_input.yaml": (
        10,
        13,
        "step 'summary': unknown input 'txt' in prompt (did you mean 'text'?)",
        ["unknown input", "txt"],
    ),
    "foreach_scope.yaml": (
        14,
        13,
        "step 'summary': 'item' is only defined in a step with foreach (in prompt)",
        ["item", "foreach"],
    ),
    "bad_import.yaml": (
        6,
        15,
        "cannot import 'no_such_module_for_flowrun:count_words': No module named "
        "'no_such_module_for_flowrun' (put no_such_module_for_flowrun.py next to the "
        "workflow file, or install the package that provides it)",
        ["cannot import", "no_such_module_for_flowrun"],
    ),
    "missing_schema_file.yaml": (
        9,
        13,
        "step 'classify': schema file not found: schemas/does_not_exist.json (looked for "
        f"{BROKEN / 'schemas' / 'does_not_exist.json'}; a path is relative to the workflow file)",
        ["schema file not found", "does_not_exist.json"],
    ),
    "invalid_schema_file.yaml": (
        9,
        13,
        "step 'classify': schema schemas/not_a_schema.json is not a valid JSON schema: "
        "the type is not a JSON schema type (use one of: array, boolean, integer, null, "
        "number, object, string) (at type, line 1, column 10)",  # its text is never quoted
        ["not a valid JSON schema", "at type"],
    ),
    "reasoning_temperature.yaml": (
        7,
        18,
        "step 'think': o3-mini is a reasoning model and rejects temperature; "
        "remove it (use reasoning_effort instead)",
        ["o3-mini", "temperature"],
    ),
    "cycle.yaml": (
        6,
        3,
        "dependency cycle: a -> b -> a (a step cannot use its own output, directly or "
        "through other steps; remove one of these references or needs)",
        ["cycle", "a -> b -> a"],
    ),
    "not_a_mapping.yaml": (
        1,
        1,
        "a workflow file must be a YAML mapping with version, name and steps",
        ["mapping"],
    ),
    "alias_bomb.yaml": (
        9,
        6,
        "through its aliases this value expands to more than 100,000 values; flowrun refuses "
        "documents that large (write the data out, or use fewer nested aliases)",
        ["aliases", "100,000"],
    ),
    "import_dependency_missing.yaml": (
        6,
        15,
        "cannot import 'needs_missing_package:count_words': No module named "
        "'no_such_package_for_flowrun' (needs_missing_package imports "
        "no_such_package_for_flowrun: install the package that provides it)",
        ["no_such_package_for_flowrun", "install"],
    ),
    "import_exits.yaml": (
        6,
        15,
        "cannot import 'exits_on_import:count_words': the module called sys.exit(3) while it "
        "was being imported",
        ["sys.exit(3)"],
    ),
    "import_raises_multiline.yaml": (
        6,
        15,
        "cannot import 'raises_on_import:count_words': RuntimeError: configuration missing: "
        "set TOOLS_HOME then retry",
        ["RuntimeError", "TOOLS_HOME"],
    ),
    "budget_unpriced.yaml": (
        8,
        12,
        "model my-finetune-without-a-price (step 'answer') has no price, so the budget "
        "(budget.max_cost_usd) cannot be kept: add it to a price file (--prices or "
        "FLOWRUN_PRICES) or use a priced model",
        ["no price", "budget"],
    ),
    "multi_document.yaml": (
        5,
        1,
        "invalid YAML: expected a single document in the stream but found another document; "
        "a workflow is one YAML document: remove the '---' line",
        ["single document", "---"],
    ),
    "schema_yaml_broken.yaml": (
        9,
        13,
        "step 'classify': schema file schemas/broken.yaml is not valid YAML: expected ',' or "
        "'}', but got ':' while parsing a flow mapping; is a closing '}' missing? "
        "(line 4, column 8)",
        ["not valid YAML", "line 4"],
    ),
    "step_id_with_dash.yaml": (
        11,
        13,
        "step 'polish': in prompt, steps.first-draft reads as a subtraction; write "
        "steps['first-draft'] for a step id with a dash",
        ["steps['first-draft']"],
    ),
    "hidden_dependency.yaml": (
        11,
        13,
        "step 'summary': prompt uses 'steps' without naming a step, so flowrun cannot tell "
        "which steps it waits for; write steps.<id>.output or steps['<id>'].output for each "
        "step it reads",
        ["steps.<id>.output", "summary", "prompt"],
    ),
}


@pytest.fixture
def in_broken(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from tests/broken so that FILE in the messages is the bare file name."""
    monkeypatch.chdir(BROKEN)


def test_every_broken_file_has_a_case() -> None:
    files = {p.name for p in BROKEN.glob("*.yaml")}
    assert files == set(CASES) | {"many_problems.yaml"}


@pytest.mark.parametrize("name", sorted(CASES))
def test_broken_file_reports_its_problem(name: str, in_broken: None) -> None:
    line, col, message, words = CASES[name]
    res = flowrun("validate", name)
    assert res.code == 2
    assert res.stdout == ""
    assert res.stderr.splitlines() == [f"{name}:{line}:{col}: {message}"]
    for word in words:
        assert word in message
    assert "Traceback" not in res.output


def test_all_problems_of_a_file_are_reported_sorted_by_line(in_broken: None) -> None:
    res = flowrun("validate", "many_problems.yaml")
    assert res.code == 2
    assert res.stderr.splitlines() == [
        "many_problems.yaml:10:13: step 'summary': unknown input 'txt' in prompt "
        "(did you mean 'text'?)",
        "many_problems.yaml:11:5: unknown key 'temprature' in step 'summary' "
        "(did you mean 'temperature'?)",
        "many_problems.yaml:14:13: step 'title' refers to unknown step 'sumary' "
        "(did you mean 'summary'?)",
        "many_problems.yaml:15:28: step 'title': max_completion_tokens must be an integer, "
        "not 'many'",
        "many_problems.yaml:18:15: cannot import 'no_such_module_for_flowrun:count_words': "
        "No module named 'no_such_module_for_flowrun' (put no_such_module_for_flowrun.py "
        "next to the workflow file, or install the package that provides it)",
        "many_problems.yaml:22:18: step 'think': o3-mini is a reasoning model and rejects "
        "temperature; remove it (use reasoning_effort instead)",
        "many_problems.yaml:24:5: duplicate key 'prompt' (first defined on line 23); keep only one",
    ]


def test_several_files_valid_and_invalid(in_broken: None) -> None:
    good = REPO / "workflows" / "summarize.yaml"
    res = flowrun("validate", good, "cycle.yaml", "unknown_key.yaml")
    assert res.code == 2
    assert res.stdout == f"{good}: ok (2 steps)\n"
    assert [line.split(":")[0] for line in res.stderr.splitlines()] == [
        "cycle.yaml",
        "unknown_key.yaml",
    ]


def test_valid_file_exits_0() -> None:
    res = flowrun("validate", REPO / "workflows" / "summarize.yaml")
    assert (res.code, res.stderr) == (0, "")
    assert res.stdout.endswith("summarize.yaml: ok (2 steps)\n")


def test_a_directory_is_one_line_naming_its_workflow_files(tmp_path) -> None:
    res = flowrun("validate", tmp_path)
    assert res.code == 2
    assert res.stderr == (
        f"{tmp_path}:1:1: is a directory; give the workflow files in it, e.g. "
        f"{tmp_path / '*.yaml'}\n"
    )


def test_a_budget_is_only_checked_against_the_shipped_prices_by_validate(tmp_path) -> None:
    from flowrun.format.loader import load_workflow

    wf = load_workflow(BROKEN / "budget_unpriced.yaml")  # a run may bring --prices
    assert wf.spec.budget is not None
    prices = tmp_path / "prices.json"
    prices.write_text('{"my-finetune-without-a-price": {"input": 1, "output": 2}}')
    res = flowrun_process(
        "validate", "budget_unpriced.yaml", cwd=BROKEN, env={"FLOWRUN_PRICES": str(prices)}
    )
    assert (res.code, res.stderr) == (0, ""), res.stderr


def test_a_module_that_exits_on_import_in_a_real_process(tmp_path) -> None:
    res = flowrun_process("validate", "import_exits.yaml", cwd=BROKEN)
    assert res.code == 2
    assert res.stderr.splitlines() == [f"import_exits.yaml:6:15: {CASES['import_exits.yaml'][2]}"]


def test_missing_file(tmp_path) -> None:
    res = flowrun("validate", tmp_path / "nope.yaml")
    assert res.code == 2
    assert res.stderr == f"{tmp_path / 'nope.yaml'}:1:1: no such file\n"


def test_broken_file_in_a_real_process_has_no_traceback_unless_debug() -> None:
    plain = flowrun_process("validate", "many_problems.yaml", cwd=BROKEN)
    assert plain.code == 2
    assert "Traceback" not in plain.output
    assert len(plain.stderr.splitlines()) == 7

    debug = flowrun_process("--debug", "validate", "many_problems.yaml", cwd=BROKEN)
    assert debug.code == 2
    assert "Traceback (most recent call last)" in debug.stderr
    assert "WorkflowInvalid" in debug.stderr
    # The problems are still printed, after the traceback.
    assert debug.stderr.splitlines()[-7:] == plain.stderr.splitlines()


_IMPORTS_AFTER = """
import sys
from flowrun.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = sorted(m for m in ("openai", "httpx", "flowrun.provider.client", "asyncio") if m in sys.modules)
print("IMPORTED:", ",".join(heavy) or "-")
"""


@pytest.mark.parametrize(
    "args",
    [["--help"], ["validate", str(REPO / "workflows" / "summarize.yaml")], ["schema"]],
    ids=["help", "validate", "schema"],
)
def test_cli_does_not_import_openai_or_asyncio(args: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORTS_AFTER, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "IMPORTED: -"


_LIGHT_IMPORTS = """
import sys
from flowrun.cli import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    assert exc.code == 0, exc.code
heavy = ("jsonschema", "flowrun.engine.tools", "networkx", "flowrun.provider.pricing", "jinja2")
print("IMPORTED:", ",".join(sorted(m for m in heavy if m in sys.modules)) or "-")
"""


def test_validate_imports_only_what_the_file_needs(tmp_path) -> None:
    """Plain schemas and tool signatures are checked without jsonschema and flowrun.engine.tools
    (with its asyncio): most of a cold validate's time; a schema with other keywords loads
    jsonschema. Templates that only place values are read without Jinja."""
    (tmp_path / "light_tools.py").write_text(
        "def count(text: str, n: int = 1) -> int:\n    return 1\n"
    )
    flow = tmp_path / "wf.yaml"
    flow.write_text(
        "version: 1\nname: light\ndefaults: {model: gpt-4o-mini}\nsteps:\n"
        "  a: {type: tool, function: 'light_tools:count', args: {text: hi}}\n"
        "  b:\n    type: extract\n    prompt: '{{ steps.a.output }}'\n"
        "    schema: {type: object, properties: {x: {type: string, pattern: '^a'}}, required: [x]}\n"
    )

    def imported() -> str:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(
            [sys.executable, "-c", _LIGHT_IMPORTS, "validate", str(flow)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.splitlines()[-1]

    assert imported() == "IMPORTED: -"
    flow.write_text(flow.read_text().replace("required: [x]", "required: [x], if: {}"))
    assert imported() == "IMPORTED: jsonschema"
    # a template that does more than place a value is checked by Jinja
    flow.write_text(flow.read_text().replace("{{ steps.a.output }}", "{{ steps.a.output | e }}"))
    assert imported() == "IMPORTED: jinja2,jsonschema"


def test_version() -> None:
    from flowrun import __version__

    res = flowrun("--version")
    assert res.code == 0
    assert res.stdout == f"flowrun, version {__version__}\n"
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    assert f'\nversion = "{__version__}"\n' in pyproject
