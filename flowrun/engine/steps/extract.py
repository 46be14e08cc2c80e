"""The ``extract`` step: structured output validated against a schema, repaired by the model."""

from __future__ import annotations

import json
import re
from typing import Any

from flowrun.engine.steps.base import StepEnv, StepError
from flowrun.engine.steps.messages import build_messages
from flowrun.format.validation import schema_errors
from flowrun.provider.strict_schema import drop_added_nulls, to_strict


def wrap_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """The schema to ask the model for, and the key the value is wrapped in (None: as is).

    The model replies with a JSON object (in JSON mode and in strict mode alike), so a
    schema whose root is not surely an object (an array, a string, ``anyOf`` ...) is asked
    for inside one: ``{"items": [...]}`` for an array, ``{"value": ...}`` otherwise.
    """
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        return schema, None
    key = "items" if kind == "array" else "value"
    moved = ("$schema", "$id", "$defs", "definitions")  # refs are relative to the root
    inner = {k: v for k, v in schema.items() if k not in moved}
    wrapper: dict[str, Any] = {k: schema[k] for k in moved[2:] if k in schema}
    wrapper.update(
        type="object", properties={key: inner}, required=[key], additionalProperties=False
    )
    return wrapper, key


def extract_request(
    env: StepEnv, messages: list[dict[str, Any]], schema: dict[str, Any]
) -> dict[str, Any]:
    """The request: strict ``json_schema`` when the schema allows it, else JSON mode + schema text."""
    request = env.base_request(env.setting("model"))
    schema, _ = wrap_schema(schema)
    strict = to_strict(schema)
    if strict is not None:
        name = re.sub(r"[^A-Za-z0-9_-]", "_", env.step_id)[:64]
        request["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": name, "schema": strict, "strict": True},
        }
    else:
        messages.insert(
            0,
            {
                "role": "system",
                "content": "Reply with one JSON object that validates against this JSON schema:\n"
                + json.dumps(schema),
            },
        )
        request["response_format"] = {"type": "json_object"}
    request["messages"] = messages
    return request


async def run_extract(env: StepEnv) -> Any:
    schema = env.workflow.schemas[(env.step_id, "schema")]
    messages = build_messages(env)
    request = extract_request(env, messages, schema)
    _, key = wrap_schema(schema)
    strict = request["response_format"]["type"] == "json_schema"
    attempts = env.step.max_repairs + 1
    reasons: list[str] = []  # why each reply was refused, in order
    for attempt in range(attempts):
        reply = await env.services.chat(env, request)
        env.record.finish_reason = reply.finish_reason
        if reply.refusal:
            raise StepError(f"the model refused: {reply.refusal}")
        content = reply.content or ""
        try:
            data = json.loads(content)
        except ValueError as exc:
            errors = [f"the reply is not valid JSON: {exc}"]
            if reply.finish_reason == "length":
                errors.append("the reply was cut off at max_completion_tokens")
        else:
            if key is not None and isinstance(data, dict) and list(data) == [key]:
                data = data[key]
            if strict:
                data = drop_added_nulls(data, schema)
            errors = schema_errors(data, schema)
            if not errors:
                return data
        reasons.append("; ".join(errors))
        if attempt == attempts - 1:
            break
        messages.append({"role": "assistant", "content": content})
        messages.append(
            {
                "role": "user",
                "content": "Your reply does not match the required JSON schema:\n"
                + "\n".join(f"- {e}" for e in errors)
                + "\nReply again with the corrected JSON only.",
            }
        )
    raise StepError(
        f"the reply did not match the schema after {env.step.max_repairs} repair(s): "
        + each_reply(reasons)
    )


def each_reply(reasons: list[str]) -> str:
    """Why each reply was refused: ``replies 1-2: X; reply 3: Y`` (just ``X`` for one reply)."""
    if len(reasons) == 1:
        return reasons[0]
    runs: list[tuple[int, int, str]] = []  # (first, last, reason), 1-based
    for number, reason in enumerate(reasons, 1):
        if runs and runs[-1][2] == reason:
            runs[-1] = (runs[-1][0], number, reason)
        else:
            runs.append((number, number, reason))
    return "; ".join(f"reply {a}: {r}" if a == b else f"replies {a}-{b}: {r}" for a, b, r in runs)
