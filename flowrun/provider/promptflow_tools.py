"""The stand-in ``promptflow.tools.openai`` and ``promptflow.tools.aoai``: promptflow-tools'
``chat`` and ``completion`` (functions, and methods of the ``OpenAI`` / ``AzureOpenAI``
classes) for a flow's own Python that calls them, written for flowrun to send what
promptflow-tools 1.6.1 sends.

* The client is the openai SDK's, built from the connection object as promptflow-tools builds
  it: ``OpenAI(api_key, organization, base_url)`` from an ``OpenAIConnection``,
  ``AzureOpenAI(api_key, api_version, azure_endpoint=api_base)`` from an
  ``AzureOpenAIConnection`` (the stand-in connections read them from the environment: the
  server and key flowrun is configured with unless the connection's own variables are set).
* ``chat(connection, prompt, model | deployment_name, ...)`` renders ``prompt`` with the other
  keyword arguments and splits it into messages (``promptflow.tools.common.build_messages``;
  the aoai one first makes every list a ``ChatInputList``, which renders one item a line),
  sends ``model``, ``messages``, ``temperature``, ``top_p``, ``stream`` (the aoai one ``n`` too,
  and its ``ms-azure-ai-promptflow-called-from: aoai-tool`` header), and of the others only
  those given (``stop`` and ``logit_bias`` when not empty, ``max_tokens`` unless ``"inf"``);
  ``functions`` with ``function_call`` (``"auto"`` when not given), or ``tools`` with
  ``tool_choice``. It returns the reply's text, or the whole message (a dict, with its
  ``function_call`` / ``tool_calls``) when functions or tools were sent; with ``stream`` a
  generator of the text's pieces.
* ``completion(connection, prompt, model | deployment_name, ...)`` renders ``prompt`` and calls
  the legacy completions API (``/v1/completions``) with promptflow-tools' parameters.

Differences: the SDK's own retries (2, honouring ``Retry-After``) instead of promptflow-tools'
loop of up to 100; an error is a ``ModelCallError`` with flowrun's message (the key never in
it). Each call that is not streamed is reported to ``side_calls``, so a tool step counts its
tokens and cost.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from enum import Enum
from typing import Any

from flowrun.errors import PromptflowToolError
from flowrun.format.promptflow_common import (
    build_messages,
    convert_to_chat_list,
    render_jinja_template,
    to_bool,
)
from flowrun.format.promptflow_connections import env_name
from flowrun.provider import side_calls
from flowrun.provider.client import sdk_errors, sync_sdk, usage_from

__all__ = [
    "AzureOpenAI",
    "OpenAI",
    "aoai_chat",
    "aoai_completion",
    "openai_chat",
    "openai_completion",
]

_AOAI_HEADER = {"ms-azure-ai-promptflow-called-from": "aoai-tool"}


def _check_function(i: int, function: Any) -> None:
    if not isinstance(function, dict):
        raise PromptflowToolError(f"function {i} '{function}' is not a dict")
    for key in ("name", "parameters"):
        if key not in function:
            raise PromptflowToolError(f"function {i} '{function}' does not have '{key}' property")
    params = function["parameters"]
    if not isinstance(params, dict) or not {"type", "properties"} <= params.keys():
        raise PromptflowToolError(
            f"function {i} '{function['name']}' parameters must be a JSON Schema object with "
            "'type' and 'properties'"
        )
    if params["type"] != "object" or not isinstance(params["properties"], dict):
        raise PromptflowToolError(
            f"function {i} '{function['name']}' parameters must be of type 'object'"
        )


def _check_functions(functions: list[Any]) -> None:
    if not functions:
        raise PromptflowToolError("functions cannot be an empty list")
    for i, function in enumerate(functions):
        _check_function(i, function)


def _check_tools(tools: list[Any]) -> None:
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not {"type", "function"} <= tool.keys():
            raise PromptflowToolError(f"tool {i} '{tool}' needs 'type' and 'function'")
        _check_function(i, tool["function"])


def _choice(value: Any, what: str, needs: tuple[str, ...]) -> Any:
    """``function_call`` / ``tool_choice``: ``"auto"`` when None; ``"auto"``, ``"none"`` or a
    dict with the keys the API needs."""
    if value is None:
        return "auto"
    if value in ("auto", "none"):
        return value
    if not isinstance(value, dict) or not set(needs) <= value.keys():
        raise PromptflowToolError(f"{what} '{value}' must be a dict with {', '.join(needs)}")
    return value


class _Tool:
    _azure = False

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        if self._azure:
            options = {
                "api_key": connection.api_key,
                "api_version": connection.api_version,
                "azure_endpoint": connection.api_base,
            }
        else:
            options = {
                "api_key": connection.api_key,
                "organization": getattr(connection, "organization", None),
                "base_url": connection.base_url,
            }
        if not options["api_key"]:
            name = getattr(connection, "name", None) or "connection"
            fallback = "AZURE_OPENAI_API_KEY" if self._azure else "OPENAI_API_KEY"
            raise PromptflowToolError(
                f"connection '{name}' has no api_key: set {env_name(name, 'api_key')} "
                f"(or {fallback})"
            )
        with sdk_errors():
            self._client = sync_sdk(azure=self._azure, **options)

    def _send(self, create: Any, params: dict[str, Any]) -> Any:
        started = time.perf_counter()
        with sdk_errors():
            reply = create(**params)
        if not params.get("stream"):
            usage = getattr(reply, "usage", None)
            side_calls.report(
                params["model"],
                None if usage is None else usage_from(usage),
                time.perf_counter() - started,
            )
        return reply

    def _chat(
        self,
        prompt: str,
        model: str,
        *,
        azure_n: int | None,
        temperature: float = 1.0,
        top_p: float = 1.0,
        stream: bool = False,
        stop: list[str] | None = None,
        max_tokens: int | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        logit_bias: dict[str, Any] | None = None,
        user: str = "",
        function_call: Any = None,
        functions: list[Any] | None = None,
        tool_choice: Any = None,
        tools: list[Any] | None = None,
        response_format: Any = None,
        seed: int | None = None,
        **kwargs: Any,
    ) -> Any:
        values = convert_to_chat_list(kwargs) if self._azure else kwargs
        params: dict[str, Any] = {
            "model": model,
            "messages": build_messages(prompt, **values),
            "temperature": temperature,
            "top_p": top_p,
        }
        if self._azure:
            params["n"] = azure_n
        params["stream"] = streamed = to_bool(stream)
        if self._azure:
            params["extra_headers"] = dict(_AOAI_HEADER)
        if tools:
            if self._azure:
                _check_tools(tools)
            params["tools"] = tools
            params["tool_choice"] = (
                _choice(tool_choice, "tool_choice", ("type", "function"))
                if self._azure
                else tool_choice
            )
        elif functions:
            _check_functions(functions)
            params["functions"] = functions
            params["function_call"] = _choice(function_call, "function_call", ("name",))
        if stop:
            params["stop"] = stop
        if max_tokens is not None and str(max_tokens).lower() != "inf":
            params["max_tokens"] = int(max_tokens)
        optional = {
            "logit_bias": logit_bias or None,
            "response_format": response_format or None,
            "seed": seed,
            "presence_penalty": presence_penalty,
            "frequency_penalty": frequency_penalty,
            "user": user or None,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        if streamed and functions is not None:
            raise PromptflowToolError("Function calling has not been supported by stream mode yet.")
        reply = self._send(self._client.chat.completions.create, params)
        if streamed:
            return _pieces(reply, lambda choice: getattr(choice.delta, "content", None))
        if functions or tools:
            return reply.model_dump()["choices"][0]["message"]
        return getattr(reply.choices[0].message, "content", "")

    def _completion(
        self,
        prompt: str,
        model: str,
        *,
        suffix: str | None = None,
        max_tokens: int | None = 16,
        temperature: float = 1.0,
        top_p: float = 1.0,
        n: int = 1,
        stream: bool = False,
        logprobs: int | None = None,
        echo: bool = False,
        stop: list[str] | None = None,
        presence_penalty: float | None = None,
        frequency_penalty: float | None = None,
        best_of: int = 1,
        logit_bias: dict[str, Any] | None = None,
        user: str = "",
        **kwargs: Any,
    ) -> Any:
        text = render_jinja_template(prompt, trim_blocks=True, keep_trailing_newline=True, **kwargs)
        params: dict[str, Any] = {
            "prompt": text,
            "model": model.value if isinstance(model, Enum) else model,
            "suffix": suffix or None,
            "max_tokens": int(max_tokens) if max_tokens is not None else None,
            "temperature": float(temperature),
            "top_p": float(top_p),
            "n": int(n),
            "stream": to_bool(stream),
            "logprobs": int(logprobs) if logprobs else None,
            "echo": to_bool(echo),
            "stop": stop or None,
            "best_of": int(best_of),
            "logit_bias": logit_bias or {},
            "user": user,
        }
        penalties = {"presence_penalty": presence_penalty, "frequency_penalty": frequency_penalty}
        if self._azure:
            params["extra_headers"] = dict(_AOAI_HEADER)
            params.update({k: v for k, v in penalties.items() if v is not None})
        else:
            params.update({k: None if v is None else float(v) for k, v in penalties.items()})
        reply = self._send(self._client.completions.create, params)
        if params["stream"]:
            return _pieces(reply, lambda choice: getattr(choice, "text", None))
        return reply.choices[0].text


def _pieces(reply: Any, text: Any) -> Iterator[str]:
    for chunk in reply:
        if chunk.choices:
            yield text(chunk.choices[0]) or ""


class OpenAI(_Tool):
    """promptflow-tools' ``OpenAI(connection)``: ``.chat(prompt, model, ...)``, ``.completion``."""

    def chat(self, prompt: str, model: str = "", **kwargs: Any) -> Any:
        return self._chat(prompt, model, azure_n=None, **kwargs)

    def completion(self, prompt: str, model: Any = "text-davinci-003", **kwargs: Any) -> Any:
        return self._completion(prompt, model, **kwargs)


class AzureOpenAI(_Tool):
    """promptflow-tools' ``AzureOpenAI(connection)``: ``.chat(prompt, deployment_name, ...)``."""

    _azure = True

    def chat(self, prompt: str, deployment_name: str, n: int = 1, **kwargs: Any) -> Any:
        return self._chat(prompt, deployment_name, azure_n=n, **kwargs)

    def completion(self, prompt: str, deployment_name: str, **kwargs: Any) -> Any:
        return self._completion(prompt, deployment_name, **kwargs)


def openai_chat(connection: Any, prompt: str, model: str = "", **kwargs: Any) -> Any:
    """``promptflow.tools.openai.chat``."""
    return OpenAI(connection).chat(prompt, model, **kwargs)


def openai_completion(
    connection: Any, prompt: str, model: str = "text-davinci-003", **kwargs: Any
) -> Any:
    """``promptflow.tools.openai.completion``."""
    return OpenAI(connection).completion(prompt, model, **kwargs)


def aoai_chat(connection: Any, prompt: str, deployment_name: str, **kwargs: Any) -> Any:
    """``promptflow.tools.aoai.chat``."""
    return AzureOpenAI(connection).chat(prompt, deployment_name, **kwargs)


def aoai_completion(connection: Any, prompt: str, deployment_name: str, **kwargs: Any) -> Any:
    """``promptflow.tools.aoai.completion``."""
    return AzureOpenAI(connection).completion(prompt, deployment_name, **kwargs)
