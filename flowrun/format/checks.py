"""Checks of a schema-valid workflow: templates, references, the DAG, tools, schemas, models."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flowrun.errors import NotText, Problem, did_you_mean, field_text
from flowrun.format import graph as dag
from flowrun.format.datafile import DataError, kind_of, load_data, schema_problem
from flowrun.format.imports import ImportProblem, import_object
from flowrun.format.model_checks import ModelChecks
from flowrun.format.spec import ExtractStep, aggregate_steps
from flowrun.format.templating import (
    SCOPE_NAMES,
    STEP_ATTRIBUTES,
    TemplateError,
    check_template,
    gives_text,
    is_template,
    iter_strings,
)
from flowrun.format.textfile import read_text
from flowrun.format.tool_checks import ToolChecks, import_hint
from flowrun.format.validation import schema_error

if TYPE_CHECKING:
    from flowrun.format.workflow import LoadedWorkflow

JINJA_GLOBALS = frozenset({"range", "dict", "lipsum", "cycler", "joiner", "namespace", "loop"})
# Step fields whose strings are never rendered (they configure the step itself).
STATIC_FIELDS = frozenset(
    {
        "type",
        "needs",
        "function",
        "model",
        "server",
        "schema",
        "output_schema",
        "response_format",
        "tool_choice",
        "tools",
        "image_detail",
        "description",
        "reasoning_effort",
        "stop",
        "extra",
    }
)
_DASHED_REFERENCE = re.compile(r"\bsteps\.(\w+(?:-\w+)+)")
_INPUT_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "array": (list,),
    "object": (dict,),
}


@dataclass
class Unchecked:
    """Names of steps, inputs and tools left out of a model-invalid file (already reported).

    References to them are not reported again as unknown.
    """

    steps: set[str] = field(default_factory=set)
    inputs: set[str] = field(default_factory=set)
    tools: set[str] = field(default_factory=set)
    servers: set[str] = field(default_factory=set)


class _Checker:
    def __init__(self, wf: LoadedWorkflow, unchecked: Unchecked | None = None) -> None:
        self.wf = wf
        self.spec = wf.spec
        self.smap = wf.source
        self.problems: list[Problem] = []
        unchecked = unchecked or Unchecked()
        self.known_steps = set(self.spec.steps) | unchecked.steps
        self.known_inputs = set(self.spec.inputs) | unchecked.inputs
        self.known_tools = set(self.spec.tools) | unchecked.tools

    def add(
        self,
        path: tuple[Any, ...],
        message: str,
        *,
        key: bool = False,
        at: tuple[int, int] | None = None,
    ) -> None:
        line, col = at or self.smap.locate(path, key=key)
        self.problems.append(Problem(self.smap.file, line, col, message))

    # --- templates and references -------------------------------------------------
    def template_refs(
        self,
        path: tuple[Any, ...],
        value: Any,
        scope: frozenset[str],
        owner: str,
        *,
        in_step: bool = True,
        has_needs: bool = False,
    ) -> dict[str, tuple[Any, ...]]:
        """Check every template inside ``value`` (at ``path``, in ``owner``).

        Reports syntax errors, unknown names and undeclared inputs; returns the steps the
        templates read, each with the path of the first string that reads it. A step
        (``in_step``) must name each step it reads, or look steps up by a computed id only
        when it lists them in ``needs`` (``has_needs``); outputs, rendered at the end, need not.
        """
        steps: dict[str, tuple[Any, ...]] = {}
        for sub, text in _strings_with_paths(value, path):
            if not is_template(text):
                continue
            field_name = field_text(sub[len(path) - 1 :])
            try:
                refs = check_template(text)
            except TemplateError as exc:
                self.add(
                    sub,
                    f"{owner}: template error in {field_name}: {exc}",
                    at=self.smap.locate_in_string(sub, exc.lineno),
                )
                continue
            if in_step and refs.whole_steps is not None:
                self.add(
                    sub,
                    f"{owner}: {field_name} uses 'steps' without naming a step, so flowrun "
                    "cannot tell which steps it waits for; write steps.<id>.output or "
                    "steps['<id>'].output for each step it reads",
                    at=self.smap.locate_in_string(sub, refs.whole_steps),
                )
            if in_step and not has_needs and refs.computed_steps is not None:
                self.add(
                    sub,
                    f"{owner}: {field_name} looks a step up by a computed id (steps[...]), so "
                    "flowrun cannot tell which steps it waits for; list them under needs:, or "
                    "write steps['<id>'] for each",
                    at=self.smap.locate_in_string(sub, refs.computed_steps),
                )
            dashed = self.dashed_step_ids(text)
            for step_id in sorted(dashed):
                self.add(
                    sub,
                    f"{owner}: in {field_name}, steps.{step_id} reads as a subtraction; "
                    f"write steps['{step_id}'] for a step id with a dash",
                )
            hidden = {p for d in dashed for p in d.split("-")[1:]}  # reported just above
            hidden_steps = {d.split("-")[0] for d in dashed} - self.known_steps
            for name in sorted(refs.names - scope - JINJA_GLOBALS - hidden):
                if name in ("item", "index") and field_name in ("when", "foreach"):
                    self.add(
                        sub,
                        f"{owner}: '{name}' is not defined in {field_name} ({field_name} is "
                        "rendered once, before the fan-out; filter the list in foreach instead)",
                    )
                elif name in ("item", "index"):
                    self.add(
                        sub,
                        f"{owner}: '{name}' is only defined in a step with foreach "
                        f"(in {field_name})",
                    )
                else:
                    self.add(
                        sub,
                        f"{owner}: unknown name '{name}' in {field_name}"
                        f"{did_you_mean(name, scope)} (names in scope: {', '.join(sorted(scope))})",
                    )
            for step, attr in refs.step_attributes:
                if step in self.spec.steps and attr not in STEP_ATTRIBUTES:
                    self.add(
                        sub,
                        f"{owner}: steps.{step} has no attribute '{attr}'"
                        f"{did_you_mean(attr, STEP_ATTRIBUTES)} "
                        f"(it has: {', '.join(sorted(STEP_ATTRIBUTES))})",
                    )
            for step in sorted(refs.steps - hidden_steps):
                steps.setdefault(step, sub)
            for name in sorted(refs.inputs - self.known_inputs):
                hint = did_you_mean(name, self.known_inputs) or " (declare it under inputs:)"
                self.add(sub, f"{owner}: unknown input '{name}' in {field_name}{hint}")
        return steps

    def dashed_step_ids(self, text: str) -> set[str]:
        """Step ids with a dash written as ``steps.my-step`` (Jinja reads ``steps.my - step``)."""
        if "-" not in text:
            return set()
        return {m for m in _DASHED_REFERENCE.findall(text) if m in self.known_steps}

    def check_steps(self) -> dict[str, frozenset[str]]:
        dependencies: dict[str, frozenset[str]] = {}
        for sid, step in self.spec.steps.items():
            base = ("steps", sid)
            owner = f"step '{sid}'"
            data = step.model_dump(by_alias=True, exclude_unset=True)
            refs: dict[str, tuple[Any, ...]] = {}
            for key, value in data.items():
                if key in STATIC_FIELDS:
                    if key != "type" and any(is_template(s) for s in iter_strings(value)):
                        self.add(
                            base + (key,),
                            f"{owner}: {key} cannot be a template (it is read before the run)",
                        )
                    continue
                scope = (
                    SCOPE_NAMES
                    if step.foreach is not None and key not in ("foreach", "when")
                    else frozenset({"inputs", "steps"})
                )
                found = self.template_refs(
                    base + (key,), value, scope, owner, has_needs=bool(step.needs)
                )
                for dep, where in found.items():
                    refs.setdefault(dep, where)
            if step.foreach is not None:
                self.check_foreach(base + ("foreach",), step.foreach, owner)
            for i, need in enumerate(step.needs):
                if need not in self.known_steps:
                    self.add(
                        base + ("needs", i),
                        f"{owner} needs unknown step '{need}'{_step_hint(need, self.known_steps)}",
                    )
            for dep, where in sorted(refs.items()):
                if dep not in self.known_steps:
                    self.add(
                        where,
                        f"{owner} refers to unknown step '{dep}'"
                        f"{_step_hint(dep, self.known_steps)}",
                    )
            deps = set(refs) | set(step.needs)
            dependencies[sid] = frozenset(d for d in deps if d in self.spec.steps)
        return dependencies

    def check_foreach(self, path: tuple[Any, ...], value: Any, owner: str) -> None:
        """A ``foreach`` that cannot give a list: a literal that is not one, or text."""
        if isinstance(value, (list, dict)):  # a mapping gives its [key, value] pairs
            return
        if is_template(value):
            try:
                text = gives_text(value)
            except TemplateError:
                return  # reported with the templates
            if text:
                self.add(
                    path,
                    f"{owner}: foreach renders to text here, never a list: write the list "
                    'expression alone, as foreach: "{{ inputs.items }}"',
                )
            return
        self.add(
            path,
            f"{owner}: foreach must be a list (or a mapping), or one {{{{ expression }}}} "
            f"giving one; got {kind_of(value)}",
        )

    def check_outputs(self) -> None:
        for name, value in self.spec.outputs.items():
            owner = f"output '{name}'"
            scope = frozenset({"inputs", "steps"})
            refs = self.template_refs(("outputs", name), value, scope, owner, in_step=False)
            for dep, where in refs.items():
                if dep in aggregate_steps(self.spec):
                    self.add(
                        where,
                        f"{owner} reads the aggregate step '{dep}': outputs are per record; "
                        "an aggregate step's results are the run's metrics (flowrun.log_metric)",
                    )
                if dep not in self.known_steps:
                    self.add(
                        where,
                        f"{owner} refers to unknown step '{dep}'"
                        f"{_step_hint(dep, self.known_steps)}",
                    )

    def check_graph(self, dependencies: dict[str, frozenset[str]]) -> None:
        for cycle in dag.find_cycles(dependencies):
            self.add(
                ("steps", cycle[0]),
                "dependency cycle: "
                + " -> ".join(cycle)
                + " (a step cannot use its own output, directly or through other steps;"
                " remove one of these references or needs)",
                key=True,
            )
        self.wf.dependencies = dependencies
        later = set(aggregate_steps(self.spec))
        for sid, deps in dependencies.items():
            for dep in sorted(deps & later if sid not in later else set()):
                self.add(
                    ("steps", sid),
                    f"step '{sid}' reads the aggregate step '{dep}', which runs once after "
                    "every record: only another aggregate step can read it",
                    key=True,
                )

    # --- inputs ------------------------------------------------------------------
    def check_defaults(self) -> None:
        """``defaults`` are settings, read as they are: none of them is a template."""
        for key, value in self.spec.defaults.model_dump(exclude_unset=True).items():
            if any(is_template(s) for s in iter_strings(value)):
                self.add(
                    ("defaults", key),
                    f"defaults: {key} cannot be a template (defaults are read before the run)",
                )

    def check_inputs(self) -> None:
        for name, spec in self.spec.inputs.items():
            if spec.coerce and spec.type != "string":
                self.add(
                    ("inputs", name, "coerce"),
                    f"input '{name}': coerce applies to type string only (this one is "
                    f"{spec.type}); remove it",
                )
            if spec.required or spec.default is None:
                continue
            if not input_type_ok(spec.default, spec.type):
                self.add(
                    ("inputs", name, "default"),
                    f"input '{name}': default {json.dumps(spec.default, default=str)} is not "
                    f"of type {spec.type}; change the default or the type",
                )
            elif spec.enum is not None and spec.default not in spec.enum:
                self.add(
                    ("inputs", name, "default"),
                    f"input '{name}': default {json.dumps(spec.default, default=str)} is not "
                    f"one of its enum {json.dumps(spec.enum, default=str)}",
                )

    # --- JSON schemas ------------------------------------------------------------
    def load_schema(
        self, ref: dict[str, Any] | str, path: tuple[Any, ...], allow_pydantic: bool
    ) -> dict[str, Any] | None:
        owner = f"step '{path[1]}'" if path[:1] == ("steps",) else ".".join(map(str, path))
        text = None  # a schema file's text, to place its errors
        if isinstance(ref, dict):
            schema = ref
        elif allow_pydantic and ":" in ref and not ref.endswith((".json", ".yaml", ".yml")):
            try:
                model = import_object(ref, self.wf.base_dir)
            except ImportProblem as exc:
                self.add(path, str(exc) + import_hint(exc, ref))
                return None
            if not hasattr(model, "model_json_schema"):
                self.add(
                    path,
                    f"{owner}: {path[-1]} '{ref}' is not a pydantic model (give a JSON schema "
                    "file, an inline schema or module:PydanticModel)",
                )
                return None
            schema = model.model_json_schema()
        else:
            if "\0" in ref:  # (no file name has one; the OS would refuse it)
                self.add(path, f"{owner}: {path[-1]} file not found: {ref!r} has a NUL character")
                return None
            file = (self.wf.base_dir / ref).resolve()
            try:
                text = read_text(file)
                schema = load_data(text, file.suffix == ".json")
            except FileNotFoundError:
                self.add(
                    path,
                    f"{owner}: {path[-1]} file not found: {ref} (looked for {file};"
                    " a path is relative to the workflow file)",
                )
                return None
            except OSError as exc:
                self.add(path, f"{owner}: {path[-1]} file {ref}: cannot read it: {exc.strerror}")
                return None
            except (NotText, DataError) as exc:  # says where, never quotes the file
                self.add(path, f"{owner}: {path[-1]} file {ref} is {exc}")
                return None
        error = schema_error(schema)
        if error is not None:
            self.add(path, f"{owner}: {path[-1]} {schema_problem(ref, error, text)}")
            return None
        if not isinstance(schema, dict):
            self.add(path, "a JSON schema must be an object")
            return None
        return schema

    def check_schemas(self) -> None:
        for sid, step in self.spec.steps.items():
            base = ("steps", sid)
            if isinstance(step, ExtractStep):
                schema = self.load_schema(step.schema_, base + ("schema",), allow_pydantic=True)
                if schema is not None:
                    self.wf.schemas[(sid, "schema")] = schema
            if step.output_schema is not None:
                schema = self.load_schema(
                    step.output_schema, base + ("output_schema",), allow_pydantic=False
                )
                if schema is not None:
                    self.wf.schemas[(sid, "output_schema")] = schema

    def budget_problems(self) -> list[Problem]:
        """Why ``budget.max_cost_usd`` cannot be kept with the default prices, if it cannot."""
        from flowrun.errors import FlowrunError
        from flowrun.format.budget_checks import budget_problems
        from flowrun.provider.pricing import load_price_table

        try:
            prices = load_price_table()
        except FlowrunError as exc:
            line, col = self.smap.locate(("budget",), key=True)
            return [Problem(self.smap.file, line, col, f"budget: {exc.message}")]
        return budget_problems(self.wf, prices, "budget.max_cost_usd")

    def run(self) -> list[Problem]:
        self.check_defaults()
        self.check_inputs()
        dependencies = self.check_steps()
        self.check_outputs()
        self.check_graph(dependencies)
        ToolChecks(self.wf, self.add, self.known_tools).run()
        self.check_schemas()
        ModelChecks(self.spec, self.add).run()
        return self.problems


def check_workflow(
    wf: LoadedWorkflow,
    unchecked: Unchecked | None = None,
    *,
    check_budget: bool = False,
    check_env: bool = False,
) -> list[Problem]:
    """All problems of a schema-valid workflow; fills in its graph, functions and schemas.

    ``unchecked`` names the parts of the file that were left out because they did not fit
    the model (they were reported already). ``check_budget``: also whether a ``budget:``
    can be kept with the default price table. ``check_env``: the key variables of the named
    servers the steps use must be set.
    """
    from flowrun.format.server_checks import check_servers

    checker = _Checker(wf, unchecked)
    problems = checker.run()
    problems += check_servers(wf, check_env=check_env, unchecked=(unchecked or Unchecked()).servers)
    if check_budget and wf.spec.budget is not None:
        problems += checker.budget_problems()
    return problems


def _strings_with_paths(value: Any, path: tuple[Any, ...]):
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings_with_paths(v, path + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings_with_paths(v, path + (i,))


def _step_hint(name: str, steps: Any) -> str:
    """A did-you-mean for a misspelt step id, else the ids there are (when few)."""
    hint = did_you_mean(name, steps)
    if not hint and 0 < len(steps) <= 12:
        hint = f" (the steps are: {', '.join(sorted(steps))})"
    return hint


def input_type_ok(value: Any, type_name: str) -> bool:
    """Whether ``value`` is of a declared input type (booleans are not numbers)."""
    if type_name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _INPUT_TYPES[type_name])
