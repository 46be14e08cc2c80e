"""The keys of a flow that no step carries: each one is converted elsewhere or reported.

Top-level keys (promptflow's ``FlowSchema`` and ``contracts.flow.Flow``), the keys of each node
(``contracts.flow.Node``) and of each input and output: a key that is neither converted nor
reported here would be dropped silently, which the converter never does.
"""

from __future__ import annotations

from typing import Any

from flowrun.convert.pf_flow import PfFlow, PfNode
from flowrun.convert.pf_includes import missing_includes
from flowrun.convert.report import Report

# Converted by the converter itself (inputs, outputs, nodes, variants, name, description).
_TOP_CONVERTED = {"$schema", "inputs", "outputs", "nodes", "node_variants", "name", "description"}
_TOP_METADATA = {"display_name", "tags", "id", "type"}
_NODE_CONVERTED = {
    "name", "type", "source", "inputs", "activate", "aggregation", "reduce", "use_variants",
    "api", "connection", "provider", "comment", "enable_cache",
}  # fmt: skip
_INPUT_KEYS = {"type", "default", "description", "enum", "is_chat_input", "is_chat_history"}
_UNKNOWN = "promptflow does not read this key either; left out"
_OUTPUT_KEYS = {"type", "reference", "description", "is_chat_output", "evaluation_only"}


def report_flow_keys(flow: PfFlow, report: Report) -> None:
    """Report every key of the flow that the workflow does not carry, with the reason."""
    data = flow.data
    _environment_variables(data.get("environment_variables"), report)
    if data.get("environment"):
        report.add(
            None,
            "environment",
            "install the flow's requirements yourself (e.g. pip install -r requirements.txt)",
            setup=True,
        )
    if data.get("additional_includes"):
        missing = missing_includes(flow.dir, data)
        report.add(
            None,
            "additional_includes",
            f"not found: {', '.join(missing)}"
            if missing
            else "nothing is copied: prompts are read from where the includes are, and tool "
            "steps name included Python files by their path",
            blocking=bool(missing),
        )
    _message_format(data, report)
    language = str(data.get("language") or "python").lower()
    if language != "python":
        report.add(
            None,
            f"language: {data.get('language')}",
            "the flow's code is not Python; flowrun calls Python functions only",
        )
    metadata = [k for k in data if k in _TOP_METADATA]
    if metadata:
        report.add(
            None,
            ", ".join(metadata),
            "promptflow metadata; a flowrun workflow has only a name and a description",
            blocking=False,
        )
    if "tools" in data:
        report.add(
            None,
            "tools",
            "promptflow's tool metadata; flowrun reads the flow's own files instead",
            blocking=False,
        )
    known = _TOP_CONVERTED | _TOP_METADATA | {
        "environment", "environment_variables", "additional_includes", "message_format",
        "language", "tools",
    }  # fmt: skip
    for key in data:
        if key not in known:
            report.add(None, f"key '{key}'", _UNKNOWN, blocking=False)
    _section_keys(data, report)
    for node in flow.nodes:
        _node_keys(node, report)


def _environment_variables(value: Any, report: Report) -> None:
    if not value:
        return
    if not isinstance(value, dict):
        report.add(None, "environment_variables", "not a mapping of names to values; left out")
        return
    names = ", ".join(str(k) for k in value)
    export = "export " + " ".join(f"{k}=..." for k in value)
    refs = [f"{k} is {v}" for k, v in value.items() if isinstance(v, str) and v.startswith("${")]
    where = f"; in the flow {', '.join(refs)}: a promptflow connection's value" if refs else ""
    report.add(
        None,
        f"environment_variables ({names})",
        "flowrun does not set environment variables: export them in the shell or on the cron "
        f"line that runs flowrun ({export}{where})",
        setup=True,
    )


def _message_format(data: dict[str, Any], report: Report) -> None:
    if "message_format" not in data:
        return
    value = data.get("message_format")
    if str(value) == "basic":
        reason = "promptflow's default; flowrun takes an image as a path or URL string"
    else:
        reason = (
            "flowrun takes an image input as a path or URL string and sends it as an image_url "
            "part; promptflow's image objects in inputs and chat history are not read"
        )
    report.add(None, f"message_format: {value}", reason, blocking=False)


def _section_keys(data: dict[str, Any], report: Report) -> None:
    for section, known in (("inputs", _INPUT_KEYS), ("outputs", _OUTPUT_KEYS)):
        specs = data.get(section) or {}
        for name, spec in specs.items() if isinstance(specs, dict) else ():
            if not isinstance(spec, dict):
                continue
            for key in spec:
                if key not in known:
                    report.add(
                        None, f"{section[:-1]} '{name}': key '{key}'", _UNKNOWN, blocking=False
                    )
            if section == "outputs" and spec.get("evaluation_only"):
                report.add(
                    None,
                    f"output '{name}': evaluation_only",
                    "flowrun has no evaluation runs; the output is computed on every run",
                    blocking=False,
                )
    chat_flags = [
        f"{section} '{name}'"
        for section in ("inputs", "outputs")
        for name, spec in (data.get(section) or {}).items()
        if isinstance(spec, dict)
        and any(spec.get(k) for k in ("is_chat_input", "is_chat_output", "is_chat_history"))
    ]
    if chat_flags:
        report.add(
            None,
            "is_chat_input / is_chat_output (" + ", ".join(chat_flags) + ")",
            "they only drive pf's interactive chat; a flowrun run is one turn: pass the "
            "chat history as an input",
            blocking=False,
        )


def _node_keys(node: PfNode, report: Report) -> None:
    data = node.data
    if data.get("enable_cache"):
        report.add(
            node.name,
            "enable_cache",
            "flowrun caches model replies per run with --cache instead",
            blocking=False,
        )
    if data.get("module"):
        report.add(
            node.name,
            f"module {data['module']}",
            "the module promptflow imports for the node's tool; flowrun does not need it",
            blocking=False,
        )
    if data.get("tool"):
        report.add(
            node.name,
            f"tool {data['tool']}",
            "the tool's name in promptflow's metadata; the node's source is what is converted",
            blocking=False,
        )
    provider = data.get("provider")
    if provider and provider not in ("AzureOpenAI", "OpenAI"):
        report.add(
            node.name,
            f"provider {provider}",
            "flowrun calls the OpenAI-compatible server in OPENAI_BASE_URL",
        )
    for key in data:
        if key not in _NODE_CONVERTED | {"module", "tool"}:
            report.add(node.name, f"key '{key}'", _UNKNOWN, blocking=False)
    if node.other_variants:
        others = ", ".join(node.other_variants)
        report.add(
            node.name,
            f"variants {others}",
            f"variant '{node.variant}' was converted; for another one convert again "
            f"with --variant {node.name}.{node.other_variants[0]}",
            blocking=False,
        )
