"""The model parameters of a promptflow ``llm`` node -> a flowrun chat step's fields.

promptflow's LLM tool takes its parameters as node inputs, often as strings
(``max_tokens: '120'``, ``stop: ''``); everything else among the inputs is a prompt variable.
"""

from __future__ import annotations

import re
from typing import Any

from flowrun.convert.pf_flow import PfFlow, PfNode, parse_ref
from flowrun.convert.pf_prompt import Translated
from flowrun.convert.pf_values import json_value, number
from flowrun.convert.report import Report

# Inputs of promptflow's LLM tool that are not prompt variables.
LLM_PARAMS = frozenset(
    {
        "connection", "prompt", "api", "deployment_name", "model", "temperature", "top_p",
        "stream", "stop", "max_tokens", "presence_penalty", "frequency_penalty", "logit_bias",
        "user", "n", "response_format", "seed", "tools", "tool_choice", "functions",
        "function_call", "suffix", "logprobs", "echo", "best_of",
    }
)  # fmt: skip


#: promptflow's gpt-4v package tools (``custom_llm`` nodes): a chat prompt with image markers.
GPT4V_TOOLS = frozenset(
    {"promptflow.tools.aoai_gpt4v.AzureOpenAI.chat", "promptflow.tools.openai_gpt4v.OpenAI.chat"}
)
_GPT4V_DEFAULT_MODEL = "gpt-4-vision-preview"  # openai_gpt4v's default for ``model``


def model_params(node: PfNode, report: Report) -> dict[str, Any]:
    inputs = node.inputs
    out: dict[str, Any] = {}
    extra: dict[str, Any] = {}

    def value(name: str) -> Any:
        raw = inputs.get(name)
        if parse_ref(raw) is not None:
            report.add(
                node.name,
                f"{name}: {raw}",
                "a model parameter is a fixed value in flowrun; it was left out",
            )
            return None
        return None if raw is None or (isinstance(raw, str) and not raw.strip()) else raw

    model = value("model") or value("deployment_name")
    if not model and node.source.get("tool") == "promptflow.tools.openai_gpt4v.OpenAI.chat":
        model = _GPT4V_DEFAULT_MODEL
    if model:
        out["model"] = str(model)
    else:
        report.add(node.name, "model", "neither model nor deployment_name is set")
    for name, key, kind in (
        ("temperature", "temperature", float),
        ("top_p", "top_p", float),
        ("max_tokens", "max_completion_tokens", int),
        ("seed", "seed", int),
    ):
        raw = value(name)
        if raw is None or str(raw).strip().lower() == "inf":
            continue
        parsed = number(raw, kind)
        if parsed is None:
            report.add(node.name, f"{name}: {raw!r}", "not a number; left out")
        else:
            out[key] = parsed
    stop = json_value(value("stop"))
    if stop:
        out["stop"] = stop
    response_format = json_value(value("response_format"))
    if isinstance(response_format, str):
        response_format = {"type": response_format}
    if isinstance(response_format, dict) and response_format.get("type") not in (None, "text"):
        extra["response_format"] = response_format
        report.add(
            node.name,
            f"response_format {response_format.get('type')}",
            "passed to the API as is (extra:), so the output stays text as in promptflow; "
            "flowrun's own response_format: json would give parsed JSON instead",
            blocking=False,
        )
    for name, default in (("presence_penalty", 0), ("frequency_penalty", 0)):
        penalty = number(value(name), float)
        if penalty is not None and penalty != default:
            extra[name] = penalty
    logit_bias = json_value(value("logit_bias"))
    if logit_bias:
        extra["logit_bias"] = logit_bias
    user = value("user")
    if user:
        extra["user"] = str(user)
    if extra:
        out["extra"] = extra
    n = number(value("n"), int)
    if n not in (None, 1):
        report.add(node.name, f"n: {n}", "flowrun asks for one completion per call")
    stream = value("stream")
    if stream is True or str(stream).strip().lower() == "true":
        out["stream"] = True
    for name in ("suffix", "logprobs", "echo", "best_of"):
        if not _unset(value(name)):
            report.add(
                node.name,
                name,
                "a parameter of the completions API; flowrun calls chat completions: left out",
            )
    for name in ("tools", "tool_choice"):  # functions / function_call: pf_functions
        if value(name) not in (None, [], {}):
            report.add(
                node.name,
                name,
                "promptflow returns the raw message for function calling; declare flowrun "
                "tools: and a chat step's tools: instead",
            )
    return out


def vision_params(node: PfNode, report: Report) -> dict[str, Any]:
    """The gpt-4v tool's image parts: ``detail: auto`` on each, as the tool sends it. Its
    ``detail`` input does not reach the request (promptflow-tools 1.6 passes it to
    ``build_messages`` as ``detail=``, which takes ``image_detail=``), so a node's ``detail``
    is reported and ``auto`` is kept: the requests stay promptflow's."""
    raw = node.inputs.get("detail")
    if raw not in (None, "") and str(raw).strip().lower() != "auto":
        report.add(
            node.name,
            f"detail: {raw}",
            "promptflow's gpt-4v tool sends 'auto' whatever this says, and so does the "
            "converted step (image_detail: auto); change it to image_detail: "
            f"{str(raw).strip().lower()} to send what the node asks for",
            blocking=False,
        )
    return {"image_detail": "auto"}


# Models only the legacy completions API serves (OpenAI's and Azure's deployment names).
_COMPLETION_MODELS = re.compile(r"instruct|davinci|babbage|curie|^(text-)?ada(-00\d)?$", re.I)


def completion_notes(node: PfNode, api: str, model: Any, report: Report) -> None:
    """An ``api: completion`` node: flowrun sends its prompt to the chat completions API."""
    why = (
        "flowrun calls the chat completions API: the prompt is sent as one user message, so a "
        "chat model's answer may differ from the completion model's"
    )
    if isinstance(model, str) and _COMPLETION_MODELS.search(model):
        why += (
            f"; {model} is a completions model, which the chat completions API refuses: set "
            "the step's model to a chat model (gpt-4o-mini ...)"
        )
    report.add(node.name, f"api: {api}", why)


def connection_notes(node: PfNode, report: Report) -> None:
    """Where flowrun finds the server and key that the node's connection held."""
    connection = node.data.get("connection") or node.inputs.get("connection")
    if connection:
        report.add(
            node.name,
            f"connection '{connection}'",
            "flowrun calls the server in OPENAI_BASE_URL with OPENAI_API_KEY",
            blocking=False,
        )
    if node.data.get("provider") == "AzureOpenAI":
        report.add(
            node.name,
            "provider AzureOpenAI",
            "the deployment name is the model; point OPENAI_BASE_URL at "
            "https://<resource>.openai.azure.com/openai/v1/",
            blocking=False,
        )


def _unset(value: Any) -> bool:
    return value in (None, False, 0, [], {}) or str(value).strip().lower() in ("false", "0", "none")


def prompt_input(node: PfNode, report: Report) -> Translated | str | None:
    """An ``llm`` node's input named ``prompt``, which replaces its template file in promptflow
    (the tool is bound as ``partial(..., prompt=template)`` and a node input of the same name
    overrides it): a reference's value becomes the messages as they are (``Translated``), a
    literal is the template itself (``str``); None when the node has no such input."""
    raw = node.inputs.get("prompt")
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    path = node.source.get("path")
    report.add(
        node.name,
        "input 'prompt'",
        f"it replaces the node's template file{f' {path}' if path else ''}, as in promptflow",
        blocking=False,
    )
    ref = parse_ref(raw)
    if ref is None:
        return raw if isinstance(raw, str) else str(raw)
    report.add(
        node.name,
        f"prompt: {raw}",
        "the value is split into messages at its role lines as in promptflow, but it is not "
        "rendered again as a Jinja template (flowrun never renders values): a value holding "
        "{{ ... }} is sent as it is",
        blocking=False,
    )
    return Translated("{{ " + ref.expr() + " }}")


def chat_role_notes(node: PfNode, flow: PfFlow, variables: list[str], report: Report) -> None:
    """A list or object flow input templated into a chat prompt: role lines inside its values
    stay text in flowrun, where promptflow splits them into messages (it escapes only text)."""
    for name in variables:
        ref = parse_ref(node.inputs.get(name))
        spec = flow.inputs.get(ref.name) if ref is not None and ref.kind == "input" else None
        if spec is not None and spec.type in ("list", "object") and _has_image(spec.default):
            report.add(
                node.name,
                f"{ref.text if ref else name} in the prompt",
                "its value holds promptflow image objects ({'data:image/...': ...}), which "
                "promptflow sends as image parts where they are; flowrun renders them as text: "
                "give the image as its own input and add it to the step's images:",
            )
        if spec is not None and spec.type in ("list", "object"):
            report.add(
                node.name,
                f"{ref.text if ref else name} in the prompt",
                f"a role line ('# system:') inside a value of this {spec.type} stays text in "
                "flowrun, as in a text input; promptflow starts a new message there",
                blocking=False,
            )


def _has_image(value: Any) -> bool:
    """A promptflow image object (``{"data:image/png;url": ...}``) anywhere in ``value``."""
    if isinstance(value, dict):
        if any(str(k).startswith("data:image/") for k in value):
            return True
        return any(_has_image(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_image(v) for v in value)
    return False
