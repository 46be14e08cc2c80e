"""The ``chat`` step: one chat completion, with JSON mode, streaming and a function-calling loop."""

from __future__ import annotations

import json
from typing import Any

from flowrun.engine.steps.base import StepEnv, StepError
from flowrun.engine.steps.messages import build_messages, message_text
from flowrun.engine.tools import tool_message
from flowrun.provider.catalog import model_info


def chat_request(env: StepEnv, messages: list[dict[str, Any]]) -> dict[str, Any]:
    """The chat completion request of a chat step (without running it)."""
    step = env.step
    request = env.base_request(env.setting("model"))
    request["messages"] = messages
    if step.response_format == "json":
        request["response_format"] = {"type": "json_object"}
    if step.tools:
        request["tools"] = env.services.toolbox.specs(step.tools)
        choice = step.tool_choice
        if choice in ("auto", "none", "required"):
            request["tool_choice"] = choice
        elif choice:
            request["tool_choice"] = {"type": "function", "function": {"name": choice}}
    if step.stream:
        request["stream"] = True
        request["stream_options"] = {"include_usage": True}
    return request


async def run_chat(env: StepEnv) -> Any:
    """Call the model, run tool calls until it answers, return its text (or parsed JSON)."""
    step = env.step
    messages = build_messages(env)
    request = chat_request(env, messages)
    if step.response_format == "json":
        _check_json_mentioned(request)
    thread = _open_thread(env, request) if step.thread else None
    rounds = 0
    while True:
        reply = await env.services.chat(env, request)
        if not (reply.tool_calls and step.tools):
            break
        rounds += 1
        if rounds > step.max_tool_rounds:
            raise StepError(
                f"the model was still calling tools after max_tool_rounds={step.max_tool_rounds} rounds; "
                "raise max_tool_rounds or make the prompt say when to stop"
            )
        messages.append(
            {"role": "assistant", "content": reply.content, "tool_calls": reply.tool_calls}
        )
        records = await env.services.toolbox.run_calls(reply.tool_calls, step.tools)
        for record in records:
            record["round"] = rounds
            if env.index is not None:
                record["item"] = env.index  # which foreach item made the call
            env.record.tool_calls.append(record)
            messages.append(tool_message(record))
        if request.get("tool_choice") not in (None, "auto", "none"):
            request["tool_choice"] = "auto"  # a forced call happened once; let the model answer now
    env.record.finish_reason = reply.finish_reason
    if reply.refusal and not reply.content:
        raise StepError(f"the model refused: {reply.refusal}")
    cap = request.get("max_completion_tokens")
    if reply.finish_reason == "length" and not (cap and reply.usage.completion_tokens > cap):
        env.warn(
            f"step '{env.label}': the reply was cut off at max_completion_tokens (finish_reason: length)"
        )
    content = reply.content or ""
    output: Any = content
    if step.response_format == "json":
        try:
            output = json.loads(content)
        except ValueError as exc:
            if reply.finish_reason == "length":
                raise StepError(
                    "the reply was cut off at max_completion_tokens (finish_reason: length), "
                    "so its JSON is incomplete; raise max_completion_tokens"
                ) from None
            raise StepError(
                f"the model's reply is not valid JSON ({exc}): {content[:200]!r}"
            ) from None
    if thread is not None:
        thread.remember(content)
    return output


def _open_thread(env: StepEnv, request: dict[str, Any]) -> Any:
    """``thread:``: put the conversation's earlier turns into the request (see ``flowrun.engine.threads``)."""
    from flowrun.engine.threads import open_thread

    return open_thread(env, request)


def _check_json_mentioned(request: dict[str, Any]) -> None:
    """OpenAI rejects JSON mode unless a message mentions JSON: say so before paying for a 400.

    Models the table does not know (other OpenAI-compatible servers) are not held to this.
    """
    if model_info(request["model"]) is None:
        return
    if not any("json" in message_text(m).lower() for m in request["messages"]):
        raise StepError(
            "response_format: json needs the word JSON in the prompt or system message "
            "(the OpenAI API rejects JSON mode otherwise); e.g. add 'Reply in JSON.'"
        )
