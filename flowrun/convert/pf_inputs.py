"""A promptflow flow's ``inputs`` -> the workflow's ``inputs`` (int -> integer, double ->
number, bool -> boolean, list -> array, object -> object, string and image -> string; a
``string`` input takes any value as its ``str()``, as promptflow does: ``coerce: true``)."""

from __future__ import annotations

from typing import Any

from flowrun.convert.pf_flow import PfFlow
from flowrun.convert.pf_images import image_value
from flowrun.convert.pf_values import typed
from flowrun.convert.report import Report

_INPUT_TYPES = {
    "string": "string",
    "int": "integer",
    "double": "number",
    "bool": "boolean",
    "list": "array",
    "object": "object",
    "image": "string",
}


def convert_inputs(flow: PfFlow, report: Report) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, spec in flow.inputs.items():
        kind = _INPUT_TYPES.get(spec.type)
        if kind is None:
            report.add(None, f"input '{name}'", f"type '{spec.type}' is read as a string")
            kind = "string"
        entry: dict[str, Any] = {"type": kind}
        if spec.type == "string":  # promptflow turns any value into text with str()
            entry["coerce"] = True
        if spec.description:
            entry["description"] = spec.description
        if spec.has_default:
            default = image_value(spec.default) if spec.type == "image" else spec.default
            entry["default"] = typed(default, kind)
            if entry.get("coerce") and not isinstance(default, str):
                entry["default"] = str(default)
        elif spec.chat_history and spec.type == "list":
            entry["default"] = []  # pf flow test starts a chat flow's history empty
            report.add(
                None,
                f"input '{name}'",
                "the chat history has no default; an empty list, as pf flow test starts a "
                "conversation with",
                blocking=False,
            )
        if spec.enum:
            entry["enum"] = spec.enum
        if spec.type == "image":
            report.add(
                None,
                f"input '{name}'",
                "an image input is a path or URL string in flowrun; give a path or URL, not "
                'promptflow\'s {"data:image/png;path": ...} object',
                blocking=False,
            )
        out[name] = entry
    return out
