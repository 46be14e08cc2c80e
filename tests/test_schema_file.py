"""schemas/workflow.schema.json: generated from the models, and true to every shipped workflow."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from jsonschema import Draft202012Validator

from tests.helpers import REPO, WORKFLOWS, flowrun

SCHEMA_FILE = REPO / "schemas" / "workflow.schema.json"
EXAMPLES = sorted([*WORKFLOWS.glob("*.yaml"), *WORKFLOWS.glob("*.yml")])
MODELINE = re.compile(r"^#\s*yaml-language-server:\s*\$schema=(\S+)", re.MULTILINE)


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def test_committed_schema_is_what_flowrun_schema_prints():
    res = flowrun("schema")
    assert res.code == 0, res.stderr
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == res.stdout, (
        "schemas/workflow.schema.json is out of date with flowrun/model.py; regenerate it:\n"
        "    python -m flowrun schema > schemas/workflow.schema.json"
    )


def test_schema_is_a_2020_12_schema_of_the_whole_format(validator):
    schema = validator.schema
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["required"] == ["version", "name", "steps"]
    assert set(schema["properties"]) == {
        "version",
        "name",
        "description",
        "inputs",
        "defaults",
        "budget",
        "servers",
        "tools",
        "steps",
        "outputs",
    }
    steps = schema["properties"]["steps"]["additionalProperties"]
    assert set(steps["discriminator"]["mapping"]) == {"chat", "extract", "tool", "embed"}


def test_there_are_examples():
    assert (WORKFLOWS / "summarize.yaml") in EXAMPLES


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_validates_against_the_json_schema(path, validator):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(data)]
    assert errors == []


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_passes_flowrun_validate(path):
    res = flowrun("validate", path)
    assert res.code == 0, res.stderr
    assert res.stdout.startswith(f"{path}: ok (")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_schema_modelines_point_at_the_schema_file(path):
    text = path.read_text(encoding="utf-8")
    for target in MODELINE.findall(text):
        assert (path.parent / target).resolve() == SCHEMA_FILE.resolve()


def test_summarize_has_the_modeline():
    first = (WORKFLOWS / "summarize.yaml").read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schemas/workflow.schema.json"


@pytest.mark.parametrize(
    "name",
    ["unknown_key.yaml", "wrong_type.yaml", "unknown_step_type.yaml", "version_not_1.yaml"],
)
def test_the_json_schema_rejects_what_the_models_reject(name, validator):
    data = yaml.safe_load((REPO / "tests" / "broken" / name).read_text(encoding="utf-8"))
    assert list(validator.iter_errors(data)) != []


def test_x_keys_are_allowed_by_both(validator, tmp_path):
    text = (
        "version: 1\nname: t\nx-shared: &m {model: gpt-4o-mini}\n"
        "steps:\n  a: {<<: *m, type: chat, prompt: hi}\n"
    )
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    assert flowrun("validate", path).code == 0


LAX = "version: 1\nname: t\nsteps:\n  a: {type: chat, model: gpt-4o, prompt: hi, KEY: VALUE}\n"


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("temperature", '"0.5"', "temperature must be a number, not '0.5'"),
        ("stream", '"yes"', "stream must be true or false, not 'yes'"),
        ("max_completion_tokens", '"100"', "max_completion_tokens must be an integer, not '100'"),
        ("max_retries", "false", "max_retries must be an integer, not false"),
        ("version", "true", "unsupported version true"),
    ],
)
def test_values_of_the_wrong_type_are_not_converted_by_either(
    key, value, expected, validator, tmp_path
):
    if key == "version":
        text = LAX.replace("version: 1", f"version: {value}").replace(", KEY: VALUE", "")
    else:
        text = LAX.replace("KEY: VALUE", f"{key}: {value}")
    assert list(validator.iter_errors(yaml.safe_load(text))) != []
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    res = flowrun("validate", path)
    assert res.code == 2
    assert expected in res.stderr and len(res.stderr.splitlines()) == 1


def test_an_integer_is_still_a_number_for_both(validator, tmp_path):
    text = LAX.replace("KEY: VALUE", "temperature: 1, top_p: 1")
    assert list(validator.iter_errors(yaml.safe_load(text))) == []
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    assert flowrun("validate", path).code == 0
