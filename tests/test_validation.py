"""Checking that a JSON schema is one: the quick check agrees with jsonschema's meta-schema."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from flowrun.format.validation import _plainly_valid, schema_error

SCHEMAS = [
    True,
    False,
    {},
    {"type": "object", "properties": {"a": {"type": "string", "minLength": 1}}},
    {"type": ["string", "null"], "description": "d", "title": "t", "default": None},
    {"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 9.5}},
    {"type": "object", "required": ["a", "b"], "additionalProperties": False},
    {"enum": [1, "a", None], "const": 1, "examples": [1]},
    {"anyOf": [{"type": "string"}, {"$ref": "#/$defs/X"}], "$defs": {"X": {"type": "null"}}},
    {"type": "string", "pattern": "^[a-z]+$", "format": "email"},
    {"type": "number", "multipleOf": 0.5, "exclusiveMinimum": 0},
    {"type": "array", "uniqueItems": True, "minItems": 1, "maxItems": 3},
    # broken, each in one way
    {"type": "objekt"},
    {"type": []},
    {"type": ["string", "string"]},
    {"required": "a"},
    {"required": ["a", "a"]},
    {"minLength": -1},
    {"minLength": True},
    {"minimum": "0"},
    {"minimum": False},
    {"properties": {"a": 3}},
    {"items": [{"type": "string"}]},
    {"anyOf": []},
    {"enum": "abc"},
    {"pattern": "(unclosed"},
    {"multipleOf": 0},
    {"description": 7},
    {"uniqueItems": "yes"},
    # not understood by the quick check: jsonschema decides
    {"type": "object", "dependentRequired": {"a": ["b"]}},
    {"type": "string", "if": {"minLength": 1}, "then": {"maxLength": 3}},
    {"minLength": 1.0},
    {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "string"},
    {"x-custom": 1},
    3,
    "string",
]


def _jsonschema_accepts(schema) -> bool:
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return False
    return True


@pytest.mark.parametrize("schema", SCHEMAS, ids=repr)
def test_the_quick_check_never_accepts_what_jsonschema_rejects(schema):
    if _plainly_valid(schema):
        assert _jsonschema_accepts(schema)
    assert (schema_error(schema) is None) == _jsonschema_accepts(schema)


def test_common_schemas_are_recognised_without_jsonschema():
    assert all(_plainly_valid(s) for s in SCHEMAS[:12])
    assert schema_error({"type": "objekt"}).message.startswith("'objekt' is not valid")
