"""``flowrun convert promptflow``: a promptflow DAG flow folder -> a flowrun workflow file.

What each part becomes:

* flow ``inputs`` -> ``inputs`` (int -> integer, double -> number, bool -> boolean,
  list -> array, object -> object, string and image -> string); ``outputs`` -> ``outputs``;
* ``llm`` node, ``api: chat`` -> ``chat`` step whose ``messages_template`` is the prompt file
  (split into messages at its role lines when the step runs), image markers of its last user
  message -> ``images``; model parameters -> step fields
  (``max_tokens`` -> ``max_completion_tokens``, ``deployment_name`` -> ``model`` when there is
  no ``model``; numbers given as strings become numbers);
* ``prompt`` node -> ``tool`` step calling ``flowrun.convert.pf_runtime:prompt_text`` with the
  rendered prompt;
* ``python`` node -> ``tool`` step calling the file's ``@tool`` function;
* ``activate: {when, is}`` -> ``when``; promptflow's bypass rules are kept: a node whose
  ``activate.when`` node was bypassed is bypassed, a node whose referenced nodes were all
  bypassed is bypassed, and a Python function gets its own default for an argument whose node
  was bypassed;
* a node that cannot be converted becomes a ``tool`` step that fails with the reason, so the
  file still validates and shows where the work is; it is reported.

The parts: ``pf_flow`` reads the flow, ``pf_prompt`` translates prompts (with ``pf_images``
for image markers and ``pf_undefined`` for promptflow's lenient Jinja), ``pf_llm`` the model
parameters, ``pf_python`` / ``pf_tool_args`` the python nodes, ``pf_keys`` every
other key of the flow, ``pf_yaml`` writes the file, ``report`` says what happened.

The user's files are never modified; the workflow is written next to them so its tool steps
import the flow's Python files.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowrun.convert.pf_connections import connection_setup
from flowrun.convert.pf_flow import PfFlow, PfNode, parse_ref, read_flow
from flowrun.convert.pf_functions import function_tools
from flowrun.convert.pf_includes import absolute, find_source
from flowrun.convert.pf_inputs import convert_inputs
from flowrun.convert.pf_keys import report_flow_keys
from flowrun.convert.pf_llm import (
    GPT4V_TOOLS,
    LLM_PARAMS,
    chat_role_notes,
    completion_notes,
    connection_notes,
    model_params,
    prompt_input,
    vision_params,
)
from flowrun.convert.pf_package import package_step
from flowrun.convert.pf_prompt import PromptError, Translated, jinja_literal, translate
from flowrun.convert.pf_python import PythonToolError, find_tool
from flowrun.convert.pf_tool_args import ToolArgs, skipped
from flowrun.convert.pf_yaml import dump_workflow, refuse_link
from flowrun.convert.report import ConversionFailed, FlowProblem, NodeEntry, Report
from flowrun.errors import WorkflowInvalid

RUNTIME = "flowrun.convert.pf_runtime"
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


@dataclass
class Conversion:
    """The converted workflow (as data and as YAML text) and the report."""

    flow: PfFlow
    out_path: Path
    workflow: dict[str, Any]
    report: Report
    text: str = ""


def convert_promptflow(
    flow_dir: str | Path, out: str | Path | None = None, *, variants: dict[str, str] | None = None
) -> Conversion:
    """Convert a flow folder (nothing is written). Raises ``NotAFlow`` / ``ConversionFailed``."""
    flow = read_flow(flow_dir, variants)
    shown = Path(out) if out is not None else flow.dir / "flowrun.yaml"
    out_path = absolute(shown)  # once: the file written is the one checked and reported
    converter = _Converter(flow, out_path, shown)
    workflow = converter.run()
    if converter.problems:
        raise ConversionFailed(converter.problems)
    conversion = Conversion(flow, out_path, workflow, converter.report)
    conversion.text = dump_workflow(workflow, flow, out_path)
    return conversion


def write_conversion(conversion: Conversion) -> Report:
    """Write the workflow file, then validate it as ``flowrun validate`` does; the report says."""
    from flowrun.format.loader import load_workflow

    refuse_link(conversion.out_path)
    conversion.out_path.parent.mkdir(parents=True, exist_ok=True)
    conversion.out_path.write_text(conversion.text, encoding="utf-8")
    try:
        load_workflow(conversion.report.out_file)  # the same file, named as the user did
    except WorkflowInvalid as exc:
        conversion.report.problems = [str(p) for p in exc.problems]
    return conversion.report


class _Converter:
    def __init__(self, flow: PfFlow, out_path: Path, shown: Path) -> None:
        self.flow = flow
        self.file = str(flow.dag)
        self.out_dir = out_path.parent
        self.report = Report(flow.dag, shown)
        self.problems: list[FlowProblem] = list(flow.problems)
        self.steps: dict[str, dict[str, Any]] = {}
        self.tools: dict[str, dict[str, Any]] = {}  # from llm nodes' functions
        self.bypassable: set[str] = set()
        self.tool_args = ToolArgs(flow, self.bypassable, self.report)
        self.outside: list[str] = []  # Python files the workflow's folder cannot import

    def run(self) -> dict[str, Any]:
        data = self.flow.data
        description = data.get("description")
        workflow: dict[str, Any] = {
            "version": 1,
            "name": _name(str(data.get("name") or self.flow.dir.resolve().name)),
            "description": str(description)
            if description
            else f"Converted from the promptflow flow in {self.flow.dir.absolute().name}/",
        }
        inputs = self.inputs()
        if inputs:
            workflow["inputs"] = inputs
        if self.problems:  # broken references: nothing below would make sense
            return workflow
        self.find_bypassable()
        for node in self.flow.nodes:
            self.node(node)
        if self.tools:
            workflow["tools"] = self.tools
        workflow["steps"] = self.steps
        outputs = self.outputs()
        if outputs:
            workflow["outputs"] = outputs
        self.notes()
        self.report.steps = len(self.steps)
        return workflow

    def inputs(self) -> dict[str, Any]:
        return convert_inputs(self.flow, self.report)

    def outputs(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, spec in self.flow.outputs.items():
            ref = parse_ref(spec.reference)
            if ref is None:
                out[name] = spec.reference
            elif ref.kind == "node" and ref.name not in self.steps:
                self.report.add(
                    None,
                    f"output '{name}'",
                    f"{ref.text} reads a node that was not converted; the output is left out",
                )
            else:
                out[name] = "{{ " + ref.expr() + " }}"
        return out

    def notes(self) -> None:
        if self.outside:
            self.report.add(
                None,
                f"python files {', '.join(dict.fromkeys(self.outside))}",
                "the workflow is written outside the flow folder, so its tool steps cannot "
                "import them: write it into the flow folder (the default)",
            )
        report_flow_keys(self.flow, self.report)

    # --- bypass rules -------------------------------------------------------------------
    def find_bypassable(self) -> None:
        """Nodes that promptflow may bypass: activated ones and those all of whose nodes may be."""
        changed = True
        while changed:
            changed = False
            for node in self.flow.nodes:
                if node.name in self.bypassable:
                    continue
                deps = self.node_refs(node)
                if node.activate is not None or (deps and all(d in self.bypassable for d in deps)):
                    self.bypassable.add(node.name)
                    changed = True

    @staticmethod
    def node_refs(node: PfNode) -> list[str]:
        refs = (parse_ref(v) for v in node.inputs.values())
        return [r.name for r in refs if r is not None and r.kind == "node"]

    def when(self, node: PfNode) -> tuple[str | None, str]:
        """The step's ``when`` and the report's words for it."""
        if node.activate is not None:
            when, value = node.activate.get("when"), node.activate.get("is")
            ref = parse_ref(when)
            left = ref.expr() if ref is not None else jinja_literal(when)
            test = f"{left} == {jinja_literal(value)}"
            if ref is not None and ref.kind == "node" and ref.name in self.bypassable:
                test = f"not {skipped(ref.name)} and {test}"
            return "{{ " + test + " }}", f"when {test}"
        deps = list(dict.fromkeys(self.node_refs(node)))
        if deps and all(d in self.bypassable for d in deps):
            test = "not (" + " and ".join(skipped(d) for d in deps) + ")"
            if len(deps) == 1:
                test = f"not {skipped(deps[0])}"
            return "{{ " + test + " }}", "runs unless all the nodes it reads were bypassed"
        return None, ""

    # --- nodes --------------------------------------------------------------------------
    def node(self, node: PfNode) -> None:
        kind = node.type or "?"
        if node.aggregation and kind != "python":
            self.report.nodes.append(_entry(node, f"{kind}, aggregation", "left out"))
            self.report.add(
                node.name,
                "aggregation node",
                "only a python aggregation node converts (to a tool step with aggregate: true)",
            )
            return
        if node.aggregation:
            step, became = self.python(node)
            if step is None:
                return
            if step.get("function") != f"{RUNTIME}:not_converted":
                step["aggregate"] = True
                became += ", aggregate: once over every record"
            if node.activate is not None:
                self.report.add(node.name, "activate", "an aggregate step always runs; left out")
            self.report.nodes.append(_entry(node, f"{kind}, aggregation", became))
            self.steps[node.name] = step
            return
        if kind == "llm":
            step, became = self.llm(node)
        elif kind == "custom_llm" and node.source.get("tool") in GPT4V_TOOLS:
            step, became = self.llm(node, vision=True)
        elif kind == "prompt":
            step, became = self.prompt(node)
        elif kind == "python":
            step, became = self.python(node)
        else:
            step, became = self.placeholder(node, f"node type '{kind}' is not supported")
        if step is None:
            return
        when, words = self.when(node)
        if when is not None:
            step = {
                "type": step.pop("type"),
                "description": step.pop("description"),
                "when": when,
                **step,
            }
            became += f", {words}"
        comment = node.data.get("comment")
        if comment:
            step["description"] = f"{step['description']}: {comment}"
        label = f"llm (api {node.data.get('api') or 'chat'})" if kind == "llm" else kind
        if kind == "custom_llm" and node.source.get("tool") in GPT4V_TOOLS:
            label = "custom_llm (gpt-4v)"
        if node.activate is not None:
            label += ", activate"
        self.report.nodes.append(_entry(node, label, became))
        self.steps[node.name] = step

    def placeholder(self, node: PfNode, reason: str) -> tuple[dict[str, Any], str]:
        self.report.add(node.name, f"{node.type or '?'} node", reason)
        step = {
            "type": "tool",
            "description": f"promptflow node '{node.name}' (not converted)",
            "function": f"{RUNTIME}:not_converted",
            "args": {"node": node.name, "reason": reason},
        }
        return step, "tool step that fails when run (not converted)"

    def source_file(self, node: PfNode, what: str) -> Path | None:
        path = node.source.get("path")
        if not path:
            self.problems.append(FlowProblem(self.file, node.name, f"no source path ({what})"))
            return None
        file = find_source(self.flow.dir, self.flow.data, str(path))
        if file is None:
            where = str(self.flow.dir / str(path))
            if self.flow.data.get("additional_includes"):
                what += " (not in the folder nor in its additional_includes)"
            self.problems.append(FlowProblem(where, node.name, f"{what} not found"))
        return file

    def template(
        self, node: PfNode, file: Path, bindings: dict[str, str], *, chat: bool = False
    ) -> Translated | None:
        try:
            source = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(FlowProblem(str(file), node.name, f"cannot read: {exc}"))
            return None
        return self.template_text(node, source, bindings, chat=chat, where=str(file))

    def template_text(
        self,
        node: PfNode,
        source: str,
        bindings: dict[str, str],
        *,
        chat: bool = False,
        where: str | None = None,
    ) -> Translated | None:
        try:
            translated = translate(source, bindings, chat=chat)
        except PromptError as exc:
            self.problems.append(FlowProblem(where or self.file, node.name, str(exc)))
            return None
        if translated.unbound:
            names = ", ".join(translated.unbound)
            self.report.add(
                node.name,
                f"prompt variable(s) {names}",
                "not given by the node: they render empty, as in promptflow",
                blocking=False,
            )
        for construct in translated.unsupported:
            self.report.add(node.name, construct, "flowrun templates cannot load other files")
        if translated.mutations:
            calls = ", ".join(f".{name}()" for name in translated.mutations)
            self.report.add(
                node.name,
                f"{calls} in the prompt",
                "flowrun's template sandbox does not let a template change a list or dict "
                "(promptflow's does): collect values with {% set ns = namespace(items=[]) %} and "
                "{% set ns.items = ns.items + [x] %}, or compute them in a python node",
            )
        for marker, reason in translated.image_markers:
            self.report.add(node.name, f"{marker} in the prompt", reason)
        for role in translated.other_roles:
            self.report.add(
                node.name,
                f"'# {role}:' messages in the prompt",
                "a messages_template sends system, user, assistant and function messages (a "
                "function message with its '## name:' and '## content:' lines): the step "
                f"fails when the prompt renders this '{role}:' message",
            )
        if chat:
            chat_role_notes(node, self.flow, translated.variables, self.report)
        return translated

    def bindings(self, node: PfNode, names: Any) -> dict[str, str]:
        out: dict[str, str] = {}
        for name in names:
            value = node.inputs[name]
            ref = parse_ref(value)
            out[name] = ref.expr() if ref is not None else jinja_literal(value)
        return out

    def llm(self, node: PfNode, *, vision: bool = False) -> tuple[dict[str, Any] | None, str]:
        inputs = node.inputs
        variables = [k for k in inputs if k not in LLM_PARAMS and not (vision and k == "detail")]
        api = "chat" if vision else str(node.data.get("api") or "chat")
        given = prompt_input(node, self.report)
        if isinstance(given, Translated):  # a reference: its value is the prompt
            translated, source_name = given, "its 'prompt' input"
        elif given is not None:  # a literal: it is the template
            bindings = self.bindings(node, variables)
            translated = self.template_text(node, given, bindings, chat=api == "chat")
            source_name = "its 'prompt' input"
        else:
            file = self.source_file(node, "prompt file")
            if file is None:
                return None, ""
            bindings = self.bindings(node, variables)
            translated = self.template(node, file, bindings, chat=api == "chat")
            source_name = file.name
        if translated is None:
            return None, ""
        text = translated.text
        step: dict[str, Any] = {
            "type": "chat",
            "description": f"promptflow {node.type} node '{node.name}' ({source_name})",
        }
        step.update(model_params(node, self.report))
        if vision:
            step.update(vision_params(node, self.report))
        tools, fields = function_tools(node, absolute(self.flow.dir), self.report)
        self.tools.update(tools)
        step.update(fields)
        if api == "chat":
            step["messages_template"] = text
            became = f"chat step, messages from {source_name}"
            if translated.images:
                step["images"] = ["{{ " + expr + " }}" for expr in translated.images]
                became += f", {len(translated.images)} image" + (
                    "s" if len(translated.images) > 1 else ""
                )
        else:
            step["prompt"] = text
            became = f"chat step, one user message from {source_name}"
            completion_notes(node, api, step.get("model"), self.report)
        connection_notes(node, self.report)
        return step, became

    def prompt(self, node: PfNode) -> tuple[dict[str, Any] | None, str]:
        file = self.source_file(node, "prompt file")
        if file is None:
            return None, ""
        translated = self.template(node, file, self.bindings(node, node.inputs))
        if translated is None:
            return None, ""
        text = translated.text
        step = {
            "type": "tool",
            "description": f"promptflow prompt node '{node.name}' ({file.name})",
            "function": f"{RUNTIME}:prompt_text",
            "args": {"text": text},
        }
        return step, f"tool step, text rendered from {file.name}"

    def python(self, node: PfNode) -> tuple[dict[str, Any] | None, str]:
        if node.source.get("type", "code") != "code":
            known = package_step(node, self.report)
            if known is not None:
                return known
            tool = node.source.get("tool") or node.source.get("type")
            return self.placeholder(node, f"package tool '{tool}' (only code in the flow converts)")
        file = self.source_file(node, "Python file")
        if file is None:
            return None, ""
        try:
            function = find_tool(file)
        except PythonToolError as exc:
            if "class-based" in str(exc):
                return self.placeholder(node, str(exc))
            self.problems.append(FlowProblem(str(file), node.name, str(exc)))
            return None, ""
        module = self.module_name(node, file)
        for line in function.unsupported_imports:
            self.report.add(
                node.name,
                line,
                "flowrun's stand-in promptflow has only tool, log_metric, the OpenAI, "
                "AzureOpenAI and Custom connections, promptflow.tools' common, openai and aoai "
                "(chat, completion) and multimedia's Image: install promptflow or drop it",
            )
        args = self.tool_args.args(node, function)
        connection_setup(node, function, file, self.report)
        spec = f"{module}:{function.name}"
        step = {
            "type": "tool",
            "description": f"promptflow python node '{node.name}' ({file.name})",
            "function": spec,
            "args": args,
            "check_args": False,  # promptflow passes values whatever the type hints say
        }
        return step, f"tool step, {spec}"

    def module_name(self, node: PfNode, file: Path) -> str:
        try:
            rel = file.relative_to(self.out_dir)
        except ValueError:
            if not file.is_relative_to(absolute(self.flow.dir)):  # an additional include
                return Path(os.path.relpath(file, self.out_dir)).as_posix()
            self.outside.append(file.name)
            return file.stem
        parts = [*rel.parent.parts, rel.stem]
        if not all(_IDENTIFIER.match(p) for p in parts):
            self.report.add(
                node.name,
                f"python file {rel}",
                "its name is not an importable module name; rename it (e.g. my_tool.py)",
            )
        return ".".join(parts)


def _entry(node: PfNode, kind: str, became: str) -> NodeEntry:
    if node.variant is not None:
        kind += f", variant {node.variant}"
    return NodeEntry(node.name, kind, became)


def _name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
    return name or "converted-flow"
