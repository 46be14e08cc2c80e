"""The loader and checks: every problem in a file, each at its exact line and column.

Files are given inline (dedented) and checked with ``load_workflow_text``; the expected
lines are what ``flowrun validate`` would print for a file called ``wf.yaml``.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from flowrun.errors import WorkflowInvalid
from flowrun.format.loader import load_workflow, load_workflow_text
from flowrun.format.yaml_source import parse_yaml


def load(text: str, base_dir: Path | None = None):
    return load_workflow_text(textwrap.dedent(text), file="wf.yaml", base_dir=base_dir)


def problems(text: str, base_dir: Path | None = None) -> list[str]:
    with pytest.raises(WorkflowInvalid) as info:
        load(text, base_dir)
    return [str(p) for p in info.value.problems]


HEAD = """\
version: 1
name: t
defaults: {model: gpt-4o-mini}
"""


# --- a valid file ---------------------------------------------------------------------------


def test_a_valid_file_loads_with_its_model_positions_and_dependencies(tmp_path):
    (tmp_path / "tools_mod.py").write_text("def count(text: str) -> int:\n    return 1\n")
    (tmp_path / "out.json").write_text('{"type": "object"}')
    wf = load(
        """\
        version: 1
        name: full
        inputs:
          text: {type: string, description: The text}
          n: {type: integer, default: 3}
        defaults: {model: gpt-4o-mini, temperature: 0.2}
        budget: {max_cost_usd: 0.5}
        steps:
          classify:
            type: extract
            prompt: "Classify {{ inputs.text }}"
            schema: {type: object, properties: {label: {type: string}}}
          count:
            type: tool
            function: tools_mod:count
            args: {text: "{{ inputs.text }}"}
            output_schema: out.json
          vec:
            type: embed
            input: "{{ steps.classify.output.label }}"
        outputs:
          label: "{{ steps.classify.output.label }}"
        """,
        base_dir=tmp_path,
    )
    assert wf.name == "full"
    assert wf.spec.inputs["text"].required and not wf.spec.inputs["n"].required
    assert wf.spec.budget.max_cost_usd == 0.5
    assert wf.dependencies == {
        "classify": frozenset(),
        "count": frozenset(),
        "vec": frozenset({"classify"}),
    }
    assert wf.schemas[("classify", "schema")]["properties"] == {"label": {"type": "string"}}
    assert wf.schemas[("count", "output_schema")] == {"type": "object"}
    assert wf.functions["tools_mod:count"]("x") == 1
    assert wf.source.locate(("steps", "count", "function")) == (15, 15)
    assert wf.source.locate(("steps", "vec"), key=True) == (18, 3)


def test_load_workflow_reads_a_file_and_remembers_where(tmp_path):
    path = tmp_path / "wf.yaml"
    path.write_text(HEAD + "steps:\n  a: {type: chat, prompt: hi}\n", encoding="utf-8")
    wf = load_workflow(path)
    assert (wf.path, wf.base_dir, wf.file) == (path, tmp_path, str(path))
    assert len(wf.content_hash) == 64


def test_yaml_anchors_merge_keys_and_x_keys_are_allowed():
    wf = load(
        """\
        version: 1
        name: anchors
        x-chat: &chat {type: chat, model: gpt-4o-mini, temperature: 0.1}
        steps:
          a: {<<: *chat, prompt: hi}
          b:
            <<: *chat
            prompt: "{{ steps.a.output }}"
        """
    )
    assert wf.spec.steps["b"].temperature == 0.1
    assert wf.dependencies["b"] == {"a"}


# --- YAML -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\nname: t\nsteps:\n  a: {type: chat\n",
            "wf.yaml:4:6: invalid YAML: expected ',' or '}', but got '<stream end>' while "
            "parsing a flow mapping that starts here; is a closing '}' missing?",
        ),
        (
            "version: 1\nname: t: u\n",
            "wf.yaml:2:8: invalid YAML: mapping values are not allowed here; quote a value "
            "that contains ': '",
        ),
        (
            "version: 1\nsteps:\n  a:\n    type: chat\n   prompt: x\n",
            "wf.yaml:5:4: invalid YAML: expected <block end>, but found '<block mapping start>' "
            "while parsing a block mapping; check the indentation of this line",
        ),
        (
            "version: 1\nname: *nope\n",
            "wf.yaml:2:7: invalid YAML: found undefined alias 'nope'; define the &anchor "
            "before using *alias",
        ),
        (
            "version: 1\nname: !!python/name:os.system x\n",
            "wf.yaml:2:7: invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/name:os.system'; flowrun reads plain YAML: remove the !tag",
        ),
        (
            "version: 1\nsteps: !!python/object:os.system {}\n",
            "wf.yaml:2:8: invalid YAML: could not determine a constructor for the tag "
            "'tag:yaml.org,2002:python/object:os.system'; flowrun reads plain YAML: remove the !tag",
        ),
        ("", "wf.yaml:1:1: a workflow file must be a YAML mapping with version, name and steps"),
        (
            "just text\n",
            "wf.yaml:1:1: a workflow file must be a YAML mapping with version, name and steps",
        ),
    ],
)
def test_yaml_errors(text, expected):
    assert problems(text) == [expected]


def test_duplicate_keys_at_every_level():
    assert problems(
        """\
        version: 1
        name: t
        name: u
        defaults: {model: gpt-4o-mini, model: gpt-4o}
        steps:
          a: {type: chat, prompt: x}
          a: {type: chat, prompt: y}
        """
    ) == [
        "wf.yaml:3:1: duplicate key 'name' (first defined on line 2); keep only one",
        "wf.yaml:4:32: duplicate key 'model' (first defined on line 4); keep only one",
        "wf.yaml:7:3: duplicate key 'a' (first defined on line 6); keep only one",
    ]


# --- the model: keys and types -------------------------------------------------------------


def test_unknown_keys_everywhere_say_what_is_allowed():
    assert problems(
        """\
        version: 1
        name: t
        extra: 1
        inputs:
          a: {type: string, requried: true}
          b: {type: string, required: false}
        defaults: {model: gpt-4o-mini, temprature: 0.1}
        tools:
          t: {function: json:dumps, descripton: x}
        steps:
          s:
            type: chat
            prompt: hi
            messages: [{role: user, content: hi, nme: x}]
        """
    ) == [
        "wf.yaml:3:1: unknown key 'extra' in the workflow (allowed: budget, defaults, "
        "description, inputs, name, outputs, servers, steps, tools, version)",
        "wf.yaml:5:21: unknown key 'requried' in input 'a' (allowed: coerce, default, description, "
        "enum, type)",
        "wf.yaml:6:21: unknown key 'required' in input 'b' (an input is required unless it "
        "has a default; remove this key)",
        "wf.yaml:7:32: unknown key 'temprature' in defaults (did you mean 'temperature'?)",
        "wf.yaml:9:29: unknown key 'descripton' in tool 't' (did you mean 'description'?)",
        "wf.yaml:14:42: unknown key 'nme' in step 's' messages[0] (did you mean 'name'?)",
    ]


def test_wrong_types_are_described_in_words():
    assert problems(
        HEAD
        + """\
inputs:
  text: string
  kind: {type: str}
budget: {max_cost_usd: free}
steps:
  a:
    type: chat
    prompt: x
    stop: 5
    needs: b
    stream: maybe
    image_detail: huge
    temperature: 5
    max_completion_tokens: -1
    messages: [{role: bot, content: hi}, {role: user, content: {a: 1}}]
  b:
  c: [1]
"""
    ) == [
        "wf.yaml:5:9: input 'text' must be a mapping, not 'string'; write text: {type: string}",
        "wf.yaml:6:16: input 'kind': type must be one of 'string', 'integer', 'number', "
        "'boolean', 'array', 'object', not 'str'; did you mean 'string'?",
        "wf.yaml:7:24: budget: max_cost_usd must be a number, not 'free'",
        "wf.yaml:12:11: step 'a': stop must be a string or a list of strings, not 5",
        "wf.yaml:13:12: step 'a': needs must be a list, not 'b'; write [b]",
        "wf.yaml:14:13: step 'a': stream must be true or false, not 'maybe'",
        "wf.yaml:15:19: step 'a': image_detail must be one of 'low', 'high', 'auto', not 'huge'",
        "wf.yaml:16:18: step 'a': temperature must be at most 2, not 5",
        "wf.yaml:17:28: step 'a': max_completion_tokens must be greater than 0, not -1",
        "wf.yaml:18:23: step 'a': messages[0].role must be one of 'system', 'developer', "
        "'user', 'assistant', not 'bot'",
        "wf.yaml:18:64: step 'a': messages[1].content must be a string or a list of content "
        "parts, not a mapping",
        "wf.yaml:19:3: step 'b' must be a mapping with a type (chat, extract, tool, embed), "
        "not null",
        "wf.yaml:20:6: step 'c' must be a mapping with a type (chat, extract, tool, embed), "
        "not a list",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "name: t\nsteps: {a: {type: tool, function: json:dumps, args: {obj: 1}}}\n",
            "wf.yaml:1:1: the workflow is missing the required key 'version'; add version: 1 "
            "at the top",
        ),
        (
            "version: 1\nsteps: {a: {type: tool, function: json:dumps, args: {obj: 1}}}\n",
            "wf.yaml:1:1: the workflow is missing the required key 'name'",
        ),
        ("version: 1\nname: t\n", "wf.yaml:1:1: the workflow is missing the required key 'steps'"),
        (
            "version: 1\nname: t\nsteps: {}\n",
            "wf.yaml:3:8: steps: a workflow needs at least one step",
        ),
        (
            "version: 1\nname: t\nsteps:\n",
            "wf.yaml:3:1: steps: a workflow needs at least one step",
        ),
        (
            "version: 1\nname: t\nsteps: [a, b]\n",
            "wf.yaml:3:8: steps must be a mapping, not a list",
        ),
        (
            "version: '1'\nname: t\nsteps: {a: {type: tool, function: json:dumps, args: {obj: 1}}}\n",
            "wf.yaml:1:10: unsupported version '1': this flowrun reads version 1 files; set version: 1",
        ),
        (
            "version: 1\nname: t\nsteps:\n  a: {type: embed}\n",
            "wf.yaml:4:3: step 'a' is missing the required key 'input' (an embed step needs it)",
        ),
        (
            "version: 1\nname: t\nsteps:\n  a: {type: extract, model: gpt-4o, prompt: x}\n",
            "wf.yaml:4:3: step 'a' is missing the required key 'schema' (an extract step needs it)",
        ),
        (
            "version: 1\nname: t\nsteps:\n  a: {prompt: x}\n",
            "wf.yaml:4:3: step 'a' has no type: add type: with one of chat, extract, tool, embed",
        ),
        (
            "version: 1\nname: t\nsteps:\n  a: {type: chta, prompt: x}\n",
            "wf.yaml:4:13: step 'a': unknown step type 'chta' (did you mean 'chat'?)",
        ),
    ],
)
def test_missing_and_misspelt_structure(text, expected):
    assert problems(text) == [expected]


def test_a_file_with_model_errors_is_still_checked_everywhere_else():
    # `a` has an unknown key and `b` a wrong type: both are reported, and the templates,
    # references and imports of the rest are still checked. `c` has no type, so it is left
    # out, and references to it are not reported again as unknown.
    assert problems(
        HEAD
        + """\
steps:
  a:
    type: chat
    promt: x
    prompt: "{{ steps.nope.output }} {{ inputs.nothing }}"
  b:
    type: chat
    stream: maybe
    prompt: "{{ steps.c.output }} {{ steps.a.outptu }}"
  c: {prompt: x}
  d: {type: tool, function: no_such_mod_xyz:f}
"""
    ) == [
        "wf.yaml:7:5: unknown key 'promt' in step 'a' (did you mean 'prompt'?)",
        "wf.yaml:8:13: step 'a' refers to unknown step 'nope' (the steps are: a, b, c, d)",
        "wf.yaml:8:13: step 'a': unknown input 'nothing' in prompt (declare it under inputs:)",
        "wf.yaml:11:13: step 'b': stream must be true or false, not 'maybe'",
        "wf.yaml:12:13: step 'b': steps.a has no attribute 'outptu' (did you mean 'output'?) "
        "(it has: cost_usd, finish_reason, model, output, skipped, status, tool_calls, usage)",
        "wf.yaml:13:3: step 'c' has no type: add type: with one of chat, extract, tool, embed",
        "wf.yaml:14:29: cannot import 'no_such_mod_xyz:f': No module named 'no_such_mod_xyz' "
        "(put no_such_mod_xyz.py next to the workflow file, or install the package that "
        "provides it)",
    ]


# --- templates and references ---------------------------------------------------------------


def test_template_errors_point_at_the_line_inside_a_block():
    assert problems(
        HEAD
        + """\
inputs:
  text: {type: string}
steps:
  a:
    type: chat
    prompt: |
      First line.
        An indented line with {{ inputs.text }}.
        And a broken one: {% if inputs.text %}
    system: "Plain {{ inputs.text }"
"""
    ) == [
        "wf.yaml:12:9: step 'a': template error in prompt: Unexpected end of template. Jinja "
        "was looking for the following tags: 'elif' or 'else' or 'endif'. The innermost block "
        "that needs to be closed is 'if'.",
        "wf.yaml:13:13: step 'a': template error in system: unexpected '}'",
    ]


def test_unknown_names_inputs_and_scope():
    assert problems(
        HEAD
        + """\
inputs:
  text: {type: string}
steps:
  a:
    type: chat
    prompt: "{{ input.text }} {{ index }}"
    description: fine
  b:
    type: tool
    function: json:dumps
    foreach: "{{ inputs.list }}"
    when: "{{ index > 0 }}"
    args: {obj: ["{{ item }}", "{{ inputs.txt }}"]}
"""
    ) == [
        "wf.yaml:9:13: step 'a': 'index' is only defined in a step with foreach (in prompt)",
        "wf.yaml:9:13: step 'a': unknown name 'input' in prompt (did you mean 'inputs'?) "
        "(names in scope: inputs, steps)",
        "wf.yaml:14:14: step 'b': unknown input 'list' in foreach (declare it under inputs:)",
        "wf.yaml:15:11: step 'b': 'index' is not defined in when (when is rendered once, "
        "before the fan-out; filter the list in foreach instead)",
        "wf.yaml:16:32: step 'b': unknown input 'txt' in args.obj[1] (did you mean 'text'?)",
    ]


def test_static_fields_cannot_be_templates_and_needs_must_name_steps():
    assert problems(
        HEAD
        + """\
inputs:
  m: {type: string}
steps:
  a:
    type: chat
    model: "{{ inputs.m }}"
    prompt: x
    needs: [b, zzz]
  b: {type: chat, prompt: x}
outputs:
  out: "{{ steps.c.output }}"
"""
    ) == [
        "wf.yaml:9:12: step 'a': model cannot be a template (it is read before the run)",
        "wf.yaml:11:16: step 'a' needs unknown step 'zzz' (the steps are: a, b)",
        "wf.yaml:14:8: output 'out' refers to unknown step 'c' (the steps are: a, b)",
    ]


def test_cycles_print_their_path_following_the_data():
    assert problems(
        HEAD
        + """\
steps:
  c: {type: chat, prompt: "{{ steps.b.output }}"}
  a: {type: chat, prompt: "{{ steps.c.output }}"}
  b: {type: chat, prompt: x, needs: [a]}
  solo: {type: chat, prompt: "{{ steps.solo.output }}"}
"""
    ) == [
        "wf.yaml:6:3: dependency cycle: a -> b -> c -> a (a step cannot use its own output, "
        "directly or through other steps; remove one of these references or needs)",
        "wf.yaml:8:3: dependency cycle: solo -> solo (a step cannot use its own output, "
        "directly or through other steps; remove one of these references or needs)",
    ]


def test_self_reference_is_a_cycle():
    lines = problems(HEAD + 'steps:\n  solo: {type: chat, prompt: "{{ steps.solo.output }}"}\n')
    assert lines == [
        "wf.yaml:5:3: dependency cycle: solo -> solo (a step cannot use its own output, "
        "directly or through other steps; remove one of these references or needs)"
    ]


# --- inputs, tools, schemas, models --------------------------------------------------------


def test_input_defaults_must_match_their_type():
    assert problems(
        HEAD
        + """\
inputs:
  n: {type: integer, default: ten}
  f: {type: number, default: true}
  o: {type: string, default: null}
  l: {type: array, default: [1]}
  e: {type: string, enum: [a, b], default: c}
steps:
  a: {type: chat, prompt: x}
"""
    ) == [
        "wf.yaml:5:31: input 'n': default \"ten\" is not of type integer; change the default "
        "or the type",
        "wf.yaml:6:30: input 'f': default true is not of type number; change the default or "
        "the type",
        'wf.yaml:9:44: input \'e\': default "c" is not one of its enum ["a", "b"]',
    ]


def test_tools_must_be_declared_and_tool_choice_must_name_one():
    assert problems(
        HEAD
        + """\
tools:
  lookup: {function: json:dumps}
steps:
  a: {type: chat, prompt: x, tools: [lookup, lookp], tool_choice: other}
  b: {type: chat, prompt: x, tool_choice: required}
"""
    ) == [
        "wf.yaml:7:46: step 'a' uses unknown tool 'lookp' (did you mean 'lookup'?) "
        "(declare it under tools:)",
        "wf.yaml:7:67: step 'a': tool_choice 'other' must be auto, none, required or one of "
        "the step's tools",
        "wf.yaml:8:43: step 'b': tool_choice needs tools: (list the tools the model may call)",
    ]


def test_schema_sources(tmp_path):
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "models_mod.py").write_text(
        "from pydantic import BaseModel\nclass Label(BaseModel):\n    name: str\nNOT_A_MODEL = 1\n"
    )
    wf_text = (
        HEAD
        + """\
steps:
  a: {type: extract, prompt: x, schema: bad.json}
  b: {type: extract, prompt: x, schema: {type: object, properties: {n: {type: integr}}}}
  c: {type: extract, prompt: x, schema: "models_mod:NOT_A_MODEL"}
  d: {type: extract, prompt: x, schema: "models_mod:Label"}
  e: {type: tool, function: json:dumps, args: {obj: 1}, output_schema: {minimum: "0"}}
"""
    )
    assert problems(wf_text, tmp_path) == [
        "wf.yaml:5:41: step 'a': schema file bad.json is not valid JSON: Expecting property "
        "name enclosed in double quotes (line 1, column 2)",
        "wf.yaml:6:41: step 'b': schema is not a valid JSON schema: 'integr' is not a JSON "
        "schema type (use one of: array, boolean, integer, null, number, object, string) "
        "(at properties/n/type)",
        "wf.yaml:7:41: step 'c': schema 'models_mod:NOT_A_MODEL' is not a pydantic model (give "
        "a JSON schema file, an inline schema or module:PydanticModel)",
        "wf.yaml:9:72: step 'e': output_schema is not a valid JSON schema: '0' is not of type "
        "'number' (at minimum)",
    ]


def test_model_parameters_the_model_rejects():
    assert problems(
        """\
        version: 1
        name: t
        defaults: {model: o3-mini, temperature: 0.3, top_p: 0.9}
        steps:
          a: {type: chat, prompt: x}
          b: {type: chat, prompt: x, model: o1, top_p: 0.5}
          c: {type: chat, prompt: x, model: gpt-4o-mini, reasoning_effort: low}
          d: {type: chat, prompt: x, model: text-embedding-3-small}
          e: {type: embed, input: x, model: text-embedding-ada-002, dimensions: 8}
          f: {type: chat, prompt: x, model: gpt-4o-mini, max_completion_tokens: 1000000}
          g: {type: chat, prompt: x, model: gpt-3.5-turbo, images: [a.png]}
          h: {type: chat, prompt: x, model: o4-mini-2025-04-16, temperature: 1}
        """
    ) == [
        "wf.yaml:3:41: defaults: temperature applies to step 'a', but o3-mini is a reasoning "
        "model and rejects temperature; remove it (use reasoning_effort instead)",
        "wf.yaml:3:53: defaults: top_p applies to step 'a', but o3-mini is a reasoning model "
        "and rejects top_p; remove it (use reasoning_effort instead)",
        "wf.yaml:6:48: step 'b': o1 is a reasoning model and rejects top_p; remove it (use "
        "reasoning_effort instead)",
        "wf.yaml:7:68: step 'c': gpt-4o-mini is not a reasoning model and rejects "
        "reasoning_effort; remove it",
        "wf.yaml:8:37: step 'd': text-embedding-3-small is an embedding model; use a step of "
        "type embed",
        "wf.yaml:9:73: step 'e': text-embedding-ada-002 does not accept dimensions; remove it "
        "or use text-embedding-3-small or text-embedding-3-large",
        "wf.yaml:10:73: step 'f': max_completion_tokens 1000000 is more than gpt-4o-mini can "
        "produce (16384); lower it to at most 16384",
        "wf.yaml:11:60: step 'g': gpt-3.5-turbo does not accept images; use a vision model "
        "(e.g. gpt-4o-mini)",
        "wf.yaml:12:70: step 'h': o4-mini-2025-04-16 is a reasoning model and rejects "
        "temperature; remove it (use reasoning_effort instead)",
    ]


def test_a_step_without_any_model_says_where_to_set_one():
    assert problems("version: 1\nname: t\nsteps:\n  a: {type: chat, prompt: x}\n") == [
        "wf.yaml:4:3: step 'a' has no model: set model: on the step or under defaults:"
    ]


def test_unknown_models_are_not_errors():
    wf = load("version: 1\nname: t\nsteps:\n  a: {type: chat, prompt: x, model: my-local-llm}\n")
    assert wf.spec.steps["a"].model == "my-local-llm"


def test_problems_are_sorted_and_unique():
    lines = problems(
        HEAD
        + 'steps:\n  a: {type: chat, prompt: "{{ steps.x.output }} {{ steps.x.usage }}"}\n'
        + '  b: {type: chat, prompt: "{{ inputs.q }}", stream: 3}\n'
    )
    assert lines == sorted(lines, key=lambda s: [int(n) for n in s.split(":")[1:3]])
    assert len(lines) == len(set(lines)) == 3


def test_the_schema_file_list_json_is_what_jsonschema_reads(tmp_path):
    (tmp_path / "s.json").write_text(json.dumps({"type": "array", "items": {"type": "string"}}))
    wf = load(HEAD + "steps:\n  a: {type: extract, prompt: x, schema: s.json}\n", tmp_path)
    assert wf.schemas[("a", "schema")] == {"type": "array", "items": {"type": "string"}}


def test_defaults_stop_and_extra_are_settings_not_templates():
    assert problems(
        """\
        version: 1
        name: t
        inputs: {m: {type: string}}
        defaults: {model: "{{ inputs.m }}", extra: {user: "{{ inputs.m }}"}}
        steps:
          a: {type: chat, prompt: hi, stop: "{{ inputs.m }}", model: gpt-4o-mini}
        """
    ) == [
        "wf.yaml:4:19: defaults: model cannot be a template (defaults are read before the run)",
        "wf.yaml:4:44: defaults: extra cannot be a template (defaults are read before the run)",
        "wf.yaml:6:37: step 'a': stop cannot be a template (it is read before the run)",
    ]


def test_an_empty_section_is_an_empty_mapping():
    wf = load(
        """\
        version: 1
        name: t
        inputs:
        defaults:
        budget:
        tools:
        outputs:
        steps:
          a: {type: tool, function: json:dumps, args: {obj: 1}}
        """
    )
    assert (wf.spec.inputs, wf.spec.tools, wf.spec.outputs, wf.spec.budget) == ({}, {}, {}, None)


# --- YAML merges and aliases ----------------------------------------------------------------


def test_keys_after_a_merge_override_the_merged_ones():
    wf = load(
        """\
        version: 1
        name: t
        x-base: &base {type: chat, model: gpt-4o-mini, temperature: 0.1, prompt: base}
        steps:
          a:
            <<: *base
            model: gpt-4o
          b: {<<: *base, temperature: 0.7}
          c: *base
        """
    )
    steps = wf.spec.steps
    assert (steps["a"].model, steps["a"].temperature, steps["a"].prompt) == ("gpt-4o", 0.1, "base")
    assert (steps["b"].model, steps["b"].temperature) == ("gpt-4o-mini", 0.7)
    assert steps["c"].model == "gpt-4o-mini"
    # the override's own position is where the key is reported
    assert wf.source.locate(("steps", "a", "model")) == (7, 12)


def test_a_key_written_twice_next_to_a_merge_is_still_a_duplicate():
    assert problems(
        """\
        version: 1
        name: t
        x-base: &base {type: chat, model: gpt-4o-mini, prompt: base}
        steps:
          a:
            <<: *base
            prompt: one
            prompt: two
          b: *base
          c: *base
        """
    ) == ["wf.yaml:8:5: duplicate key 'prompt' (first defined on line 7); keep only one"]


def test_an_anchor_with_a_merge_aliased_twice_has_no_false_duplicates():
    wf = load(
        """\
        version: 1
        name: t
        x-root: &root {type: chat, model: gpt-4o-mini, prompt: root}
        steps:
          a: {<<: &mid {<<: *root, prompt: mid}, model: gpt-4o}
          b: *mid
        """
    )
    assert (wf.spec.steps["a"].prompt, wf.spec.steps["a"].model) == ("mid", "gpt-4o")
    assert (wf.spec.steps["b"].prompt, wf.spec.steps["b"].model) == ("mid", "gpt-4o-mini")


def _alias_bomb(levels: int) -> str:
    lines = ["version: 1", "name: bomb", "x-a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for prev, name in zip("abcdefg"[: levels - 1], "bcdefgh"[: levels - 1], strict=True):
        lines.append(f"x-{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    lines += ["steps:", "  s: {type: chat, model: gpt-4o, prompt: x}"]
    return "\n".join(lines) + "\n"


def test_aliases_that_expand_beyond_the_limit_are_refused_without_expanding_them():
    import tracemalloc

    tracemalloc.start()
    try:
        assert problems(_alias_bomb(7)) == [
            "wf.yaml:8:6: through its aliases this value expands to more than 100,000 values; "
            "flowrun refuses documents that large (write the data out, or use fewer nested aliases)"
        ]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 50_000_000  # 9**7 = 4.8 million values were never built


def test_aliases_below_the_limit_are_expanded_into_separate_copies():
    wf = load(_alias_bomb(4))  # 9**4 values: fine
    assert list(wf.spec.steps) == ["s"]
    data, _, _ = parse_yaml("a: &a [[1], [2]]\nb: *a\n", "f.yaml")
    assert data["a"] == data["b"] == [[1], [2]]
    assert data["a"] is not data["b"] and data["a"][0] is not data["b"][0]


def test_a_recursive_alias_is_refused():
    assert problems("version: 1\nname: t\nx-a: &a [1, *a]\nsteps: {}\n") == [
        "wf.yaml:3:6: this value contains an alias to itself; YAML aliases must not be recursive"
    ]


def test_several_documents_in_one_file_are_one_readable_error():
    assert problems("version: 1\nname: t\n---\nname: u\n") == [
        "wf.yaml:3:1: invalid YAML: expected a single document in the stream but found "
        "another document; a workflow is one YAML document: remove the '---' line"
    ]


# --- types are not converted --------------------------------------------------------------------


def test_strings_and_booleans_are_not_converted_to_numbers_or_booleans():
    assert problems(
        """\
        version: true
        name: t
        steps:
          a:
            type: chat
            model: gpt-4o
            prompt: hi
            temperature: "0.5"
            stream: "yes"
            max_completion_tokens: "100"
            max_retries: false
            top_p: 1
        """
    ) == [
        "wf.yaml:1:10: unsupported version true: this flowrun reads version 1 files; set version: 1",
        "wf.yaml:8:18: step 'a': temperature must be a number, not '0.5'",
        "wf.yaml:9:13: step 'a': stream must be true or false, not 'yes'",
        "wf.yaml:10:28: step 'a': max_completion_tokens must be an integer, not '100'",
        "wf.yaml:11:18: step 'a': max_retries must be an integer, not false",
    ]


# --- every problem is one line -------------------------------------------------------------------


def test_a_step_id_with_a_line_break_is_printed_on_one_line():
    lines = problems(HEAD + 'steps:\n  "a\\nb": {type: chat, prompt: "{{ steps.zz.output }}"}\n')
    assert lines == [
        "wf.yaml:5:32: step 'a b' refers to unknown step 'zz' (the steps are: a b)",
    ]


def test_a_broken_yaml_schema_file_is_described_in_one_line(tmp_path):
    (tmp_path / "s.yaml").write_text("type: object\nproperties:\n  a: {type: string\n")
    assert problems(
        HEAD + "steps:\n  a: {type: extract, prompt: x, schema: s.yaml}\n", tmp_path
    ) == [
        "wf.yaml:5:41: step 'a': schema file s.yaml is not valid YAML: expected ',' or '}', but "
        "got '<stream end>' while parsing a flow mapping that starts here; is a closing '}' "
        "missing? (line 3, column 6)"
    ]


# --- hidden dependencies and step ids with dashes ------------------------------------------------


def test_steps_used_without_a_step_id_is_a_hidden_dependency():
    assert problems(
        HEAD
        + """\
steps:
  a: {type: chat, prompt: hi}
  b: {type: chat, prompt: "{% set s = steps %}{{ s.a.output }}"}
  c:
    type: chat
    prompt: |
      Everything:
      {{ steps | tojson }}
  d: {type: chat, prompt: "{{ steps[inputs.which].output }}"}
  e: {type: chat, prompt: "{{ steps.a.output }} {{ steps['a'].usage }}"}
outputs:
  all: "{{ steps | tojson }}"
"""
    ) == [
        "wf.yaml:6:27: step 'b': prompt uses 'steps' without naming a step, so flowrun cannot "
        "tell which steps it waits for; write steps.<id>.output or steps['<id>'].output for "
        "each step it reads",
        "wf.yaml:11:7: step 'c': prompt uses 'steps' without naming a step, so flowrun cannot "
        "tell which steps it waits for; write steps.<id>.output or steps['<id>'].output for "
        "each step it reads",
        "wf.yaml:12:27: step 'd': prompt looks a step up by a computed id (steps[...]), so "
        "flowrun cannot tell which steps it waits for; list them under needs:, or write "
        "steps['<id>'] for each",
        "wf.yaml:12:27: step 'd': unknown input 'which' in prompt (declare it under inputs:)",
    ]


def test_a_computed_step_lookup_is_allowed_with_needs():
    wf = load(
        HEAD
        + """inputs: {which: {type: string, default: a}}
steps:
  a: {type: chat, prompt: hi}
  b: {type: chat, prompt: hi}
  pick: {type: chat, prompt: "{{ steps[inputs.which].output }}", needs: [a, b]}
"""
    )
    assert wf.dependencies["pick"] == {"a", "b"}
    lines = problems(
        HEAD
        + """steps:
  a: {type: chat, prompt: hi}
  pick: {type: chat, prompt: "{{ steps | tojson }}", needs: [a]}
"""
    )
    assert len(lines) == 1
    assert "step 'pick': prompt uses 'steps' without naming a step" in lines[0]


def test_a_step_id_with_a_dash_must_be_written_with_brackets():
    assert problems(
        HEAD
        + """\
steps:
  my-step: {type: chat, prompt: hi}
  b: {type: chat, prompt: "{{ steps.my-step.output }}"}
  c: {type: chat, prompt: "{{ steps['my-step'].output }}"}
"""
    ) == [
        "wf.yaml:6:27: step 'b': in prompt, steps.my-step reads as a subtraction; "
        "write steps['my-step'] for a step id with a dash",
    ]


# --- models ----------------------------------------------------------------------------------------


def test_unknown_o_series_names_are_checked_as_reasoning_models():
    assert problems(
        """\
        version: 1
        name: t
        steps:
          a: {type: chat, prompt: x, model: o1-preview, temperature: 0.5}
          b: {type: chat, prompt: x, model: o3-pro, top_p: 0.5}
          c: {type: chat, prompt: x, model: o4-mini-deep-research, temperature: 1}
          d: {type: chat, prompt: x, model: "ft:o4-mini:org::abc", temperature: 1}
          e: {type: chat, prompt: x, model: omni-local, temperature: 1}
          f: {type: chat, prompt: x, model: o3-pro, images: [a.png], max_completion_tokens: 999999}
        """
    ) == [
        "wf.yaml:4:62: step 'a': o1-preview is a reasoning model and rejects temperature; "
        "remove it (use reasoning_effort instead)",
        "wf.yaml:5:52: step 'b': o3-pro is a reasoning model and rejects top_p; remove it "
        "(use reasoning_effort instead)",
        "wf.yaml:6:73: step 'c': o4-mini-deep-research is a reasoning model and rejects "
        "temperature; remove it (use reasoning_effort instead)",
        "wf.yaml:7:73: step 'd': ft:o4-mini:org::abc is a reasoning model and rejects "
        "temperature; remove it (use reasoning_effort instead)",
    ]


def test_parameters_and_messages_particular_models_refuse():
    assert problems(
        """\
        version: 1
        name: t
        steps:
          a: {type: chat, model: o1-mini, system: Be brief., prompt: x, reasoning_effort: low}
          b:
            type: chat
            model: o1-mini-2024-09-12
            messages: [{role: developer, content: x}, {role: user, content: y}]
          c: {type: chat, model: o3, prompt: x, stop: "END"}
          d: {type: chat, model: "ft:o4-mini:org::abc", prompt: x, stop: ["END"]}
          e: {type: chat, model: o3-mini, prompt: x, stop: "END", reasoning_effort: low}
          f: {type: chat, model: gpt-4o-2024-05-13, prompt: x, max_completion_tokens: 5000}
          g: {type: chat, model: o1-mini, prompt: x, temperature: 1}
        """
    ) == [
        "wf.yaml:4:43: step 'a': o1-mini does not accept system messages; put these "
        "instructions in the prompt (a user message)",
        "wf.yaml:4:83: step 'a': o1-mini does not accept reasoning_effort; remove it",
        "wf.yaml:8:23: step 'b': o1-mini-2024-09-12 does not accept developer messages; put "
        "these instructions in the prompt (a user message)",
        "wf.yaml:9:47: step 'c': o3 does not accept stop; remove it",
        "wf.yaml:10:66: step 'd': ft:o4-mini:org::abc does not accept stop; remove it",
        "wf.yaml:12:79: step 'f': max_completion_tokens 5000 is more than gpt-4o-2024-05-13 can "
        "produce (4096); lower it to at most 4096",
        "wf.yaml:13:59: step 'g': o1-mini is a reasoning model and rejects temperature; remove it",
    ]


def test_embedding_dimensions_above_what_the_model_gives():
    assert problems(
        """\
        version: 1
        name: t
        steps:
          a: {type: embed, input: x, dimensions: 1537}
          b: {type: embed, input: x, model: text-embedding-3-large, dimensions: 3073}
          c: {type: embed, input: x, model: text-embedding-3-large, dimensions: 3072}
          d: {type: embed, input: x, model: text-embedding-3-small, dimensions: 1536}
        """
    ) == [
        "wf.yaml:4:42: step 'a': dimensions 1537 is more than text-embedding-3-small gives "
        "(1536); lower it to at most 1536",
        "wf.yaml:5:73: step 'b': dimensions 3073 is more than text-embedding-3-large gives "
        "(3072); lower it to at most 3072",
    ]
