"""The only module that imports the openai SDK: chat and embedding calls, errors, retries.

Without a named server, configuration comes from the environment as the SDK reads it
(``OPENAI_API_KEY``, ``OPENAI_BASE_URL``), so any OpenAI-compatible server works; a named
server (``flowrun.provider.servers.ServerSettings``) brings its own URL, key variable, headers
and differences from OpenAI (which parameter carries the output cap, what an assistant message
with tool calls carries as content), and its errors name it. Retries on 429/5xx/timeouts are
the SDK's own (respecting Retry-After); the number taken is reported back.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from flowrun.errors import ModelCallError
from flowrun.provider import prepared_sdk
from flowrun.provider.interface import ChatReply, EmbedReply, ModelClient
from flowrun.provider.usage import count_missing_chat, count_missing_embed, usage_from
from flowrun.redaction import redact

if TYPE_CHECKING:
    from flowrun.provider.servers import ServerSettings

__all__ = [
    "ChatReply",
    "EmbedReply",
    "ModelCallError",
    "ModelClient",
    "OpenAIClient",
    "api_error",
    "sdk_errors",
    "chat_reply_from_body",
    "sync_sdk",
    "usage_from",
]


def sdk_maker() -> Callable[[str], Any]:
    """What makes ``OpenAIClient()``'s SDK client from a key, for ``prepared_sdk.start``.

    The SDK and its HTTP stack (httpcore2, which the client imports when it is made) are
    imported here, in the calling thread: the other thread then imports nothing and mostly
    loads certificates, without the GIL."""
    import openai

    with contextlib.suppress(ImportError):  # an SDK without it imports its own stack there
        import httpcore2  # noqa: F401

    return lambda key: openai.AsyncOpenAI(api_key=key)


class OpenAIClient:
    """A ``ModelClient``: async calls to an OpenAI-compatible API through ``openai.AsyncOpenAI``
    (``AsyncAzureOpenAI`` for a named Azure server)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        base_url: str | None = None,
        server: ServerSettings | None = None,
    ) -> None:
        self._api_key = api_key
        self._base_url = base_url
        self.server = server
        # "": the server refuses content null on assistant messages with tool calls
        self._tool_content: str | None = (
            "" if server is not None and server.tool_call_content == "empty" else None
        )
        self._null_accepted = False  # the server took content null on a tool-call message
        self._root: Any = None
        self._by_retries: dict[int | None, Any] = {}

    def _sdk(self, max_retries: int | None) -> Any:
        if self._root is None and self.server is not None:
            try:
                self._root = _server_sdk(self.server)
            except ModelCallError:
                raise
            except Exception as exc:  # e.g. the Azure client's own argument checks
                raise ModelCallError(f"server '{self.server.name}': {redact(str(exc))}") from None
            self._by_retries[None] = self._root
        if self._root is None:
            import openai

            key = self._api_key or os.environ.get("OPENAI_API_KEY")
            if not key:
                raise ModelCallError(
                    "OPENAI_API_KEY is not set: export it (or point OPENAI_BASE_URL at an "
                    "OpenAI-compatible server and set any key)"
                )
            made = prepared_sdk.take(key, self._base_url)  # made while the run was set up
            if type(made) is openai.AsyncOpenAI:
                self._root = made
            else:
                self._root = openai.AsyncOpenAI(api_key=key, base_url=self._base_url)
            self._by_retries[None] = self._root
        if max_retries not in self._by_retries:
            self._by_retries[max_retries] = self._root.with_options(max_retries=max_retries)
        return self._by_retries[max_retries]

    async def chat(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        """One chat completion (streamed when ``request['stream']``), with usage.

        A server that refuses ``"content": null`` on an assistant message with tool calls
        gets the request again with ``""`` (once; then always, for this client), and the
        reply's notes say so.
        """
        body = self.adapted(request)
        extra = body.pop("extra", None) or None
        sdk = self._sdk(max_retries)
        options: dict[str, Any] = {}
        if timeout_s:
            options["timeout"] = timeout_s
        if extra:
            options["extra_body"] = extra
        notes: list[str] = []
        stream = bool(body.get("stream"))
        try:
            if self._may_refuse_null_content(body):
                # one attempt without the SDK's retries: a refusal (often a 500) is not retried
                try:
                    raw = await _send_chat(self._sdk(0), body, options)
                    self._null_accepted = True
                except Exception as exc:
                    if getattr(exc, "status_code", None) in (400, 422, 500):
                        self._tool_content = ""
                        body["messages"] = _with_tool_content(body["messages"], "")
                        notes.append(self._null_content_note(exc))
                    raw = await _send_chat(sdk, body, options)
            else:
                raw = await _send_chat(sdk, body, options)
            retries = getattr(raw, "retries_taken", 0)
            if stream:
                reply, usage = await _collect_stream(raw.parse(), on_text)
            else:
                data = _json_body(raw)
                reply, usage = chat_reply_from_body(data), data.get("usage")
        except ModelCallError as exc:
            raise self._named(exc) from None
        except Exception as exc:
            raise self._named(_translate(exc, timeout_s, self._url())) from None
        reply.retries = retries
        reply.notes = notes
        if usage is None:  # the server did not say: count it here, and say so
            reply.usage, reply.approximate_usage = count_missing_chat(request, reply), True
        return reply

    @property
    def cap_parameter(self) -> str:
        """The parameter this server takes the output cap as."""
        return self.server.max_tokens_param if self.server is not None else "max_completion_tokens"

    def adapted(self, request: dict[str, Any], *, copy: bool = True) -> dict[str, Any]:
        """The request as this server takes it: its cap parameter, deployment, tool content
        (a copy; ``copy=False``: ``request`` itself when none of them changes it, for a caller
        that only reads it)."""
        server = self.server
        if not copy and server is None and self._tool_content is None:
            return request
        body = dict(request)
        if server is not None:
            if server.max_tokens_param == "max_tokens" and "max_completion_tokens" in body:
                body["max_tokens"] = body.pop("max_completion_tokens")
            if body.get("model") in server.deployments:
                body["model"] = server.deployments[body["model"]]
        if self._tool_content is not None and "messages" in body:
            body["messages"] = _with_tool_content(body["messages"], self._tool_content)
        return body

    def _may_refuse_null_content(self, body: dict[str, Any]) -> bool:
        """Whether the request has an assistant message with tool calls and content null that
        the server has not been seen to accept or refuse (unset ``tool_call_content``)."""
        if self._tool_content is not None or self._null_accepted:
            return False
        if self.server is not None and self.server.tool_call_content == "null":
            return False
        return any(
            m.get("role") == "assistant" and m.get("tool_calls") and m.get("content") is None
            for m in body.get("messages") or []
        )

    def _null_content_note(self, exc: Exception) -> str:
        who = f"server '{self.server.name}'" if self.server else f"the server at {self._url()}"
        fix = (
            f"set tool_call_content: empty on server '{self.server.name}'"
            if self.server
            else "define it under servers: with tool_call_content: empty"
        )
        return (
            f"{who} refused an assistant message with tool calls and content null "
            f'({getattr(exc, "status_code", "?")}); it was sent again with content "" '
            f"({fix} to skip the refused request)"
        )

    def _url(self) -> str:
        if self.server is not None:
            return self.server.url
        return self._base_url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"

    def _named(self, error: ModelCallError) -> ModelCallError:
        """``error`` with the server's name in front (named servers only)."""
        if self.server is not None and not str(error).startswith(f"server '{self.server.name}'"):
            error.args = (f"server '{self.server.name}': {error}",)
        return error

    async def embed(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> EmbedReply:
        """One embeddings request; vectors come back in input order."""
        body = self.adapted(request)
        extra = body.pop("extra", None) or None
        sdk = self._sdk(max_retries)
        options: dict[str, Any] = {}
        if timeout_s:
            options["timeout"] = timeout_s
        if extra:
            options["extra_body"] = extra
        try:
            raw = await sdk.embeddings.with_raw_response.create(**body, **options)
            parsed = raw.parse()
        except ModelCallError as exc:
            raise self._named(exc) from None
        except Exception as exc:
            raise self._named(_translate(exc, timeout_s, self._url())) from None
        data = sorted(parsed.data, key=lambda d: d.index)
        missing = parsed.usage is None
        return EmbedReply(
            vectors=[list(d.embedding) for d in data],
            usage=count_missing_embed(request) if missing else usage_from(parsed.usage),
            model=parsed.model or body.get("model", ""),
            retries=getattr(raw, "retries_taken", 0),
            approximate_usage=missing,
        )

    def sdk(self, max_retries: int | None = None) -> Any:
        """The ``openai.AsyncOpenAI`` client, for the APIs beyond chat and embeddings (Batch API)."""
        return self._sdk(max_retries)

    async def aclose(self) -> None:
        if self._root is not None:
            await self._root.close()
            self._root = None
            self._by_retries.clear()


async def _send_chat(sdk: Any, body: dict[str, Any], options: dict[str, Any]) -> Any:
    """Send a chat request through the SDK (its retries, timeouts, errors and auth) and return
    its raw response, with ``retries_taken``.

    A streamed request goes through ``chat.completions`` (its stream parser). Any other goes
    through the client's own ``post`` with the body as it is: the request is already plain
    JSON, so the SDK's per-request parameter transform (a walk over the TypedDict
    annotations of every parameter) and its pydantic reply models would only cost time; the
    reply's JSON is read by ``chat_reply_from_body``.
    """
    if body.get("stream"):
        return await sdk.chat.completions.with_raw_response.create(**body, **options)
    from openai._constants import RAW_RESPONSE_HEADER

    request: dict[str, Any] = {
        "headers": {RAW_RESPONSE_HEADER: "true"},  # the raw response, with retries_taken
        "security": {"bearer_auth": True},  # as chat.completions.create asks
    }
    if "timeout" in options:
        request["timeout"] = options["timeout"]
    if "extra_body" in options:
        request["extra_json"] = options["extra_body"]
    return await sdk.post("/chat/completions", body=body, cast_to=object, options=request)


def _json_body(raw: Any) -> dict[str, Any]:
    """The JSON object a (successful) reply carries."""
    import json

    try:
        data = json.loads(raw.http_response.content)
    except ValueError:
        raise ModelCallError("the API returned a reply that is not JSON") from None
    if not isinstance(data, dict):
        raise ModelCallError("the API returned a reply that is not a JSON object")
    return data


def chat_reply_from_body(body: dict[str, Any]) -> ChatReply:
    """A ``ChatReply`` from a chat completion's JSON (a live reply, or a Batch API output
    line's body). Raises ``ModelCallError`` if it has no choices; ``KeyError``/``TypeError``
    for a body of another shape."""
    choices = body.get("choices")
    if not choices:
        raise ModelCallError("the API returned no choices")
    choice = choices[0]
    message = choice.get("message") or {}
    calls = message.get("tool_calls")
    tool_calls = (
        [
            {
                "id": tc.get("id"),
                "type": "function",
                "function": {
                    "name": tc["function"]["name"],
                    "arguments": tc["function"].get("arguments") or "",
                },
            }
            for tc in calls
        ]
        if calls
        else []  # (most replies: no comprehension to run)
    )
    return ChatReply(  # (by position, in the order of its fields)
        message.get("content"),
        tool_calls,
        message.get("refusal"),
        choice.get("finish_reason"),
        usage_from(body.get("usage")),
        body.get("model") or "",
    )


async def _collect_stream(
    stream: Any, on_text: Callable[[str], None] | None
) -> tuple[ChatReply, Any]:
    """The streamed reply, and the usage chunk's usage (None: the server sent none)."""
    parts: list[str] = []
    refusal: list[str] = []
    calls: dict[int, dict[str, Any]] = {}
    reply = ChatReply(content=None)
    usage = None
    async for chunk in stream:
        reply.model = chunk.model or reply.model
        if chunk.usage is not None:
            usage = chunk.usage
            reply.usage = usage_from(chunk.usage)
        for choice in chunk.choices:
            delta = choice.delta
            if delta.content:
                parts.append(delta.content)
                if on_text:
                    on_text(delta.content)
            if getattr(delta, "refusal", None):
                refusal.append(delta.refusal)
            for tc in delta.tool_calls or []:
                entry = calls.setdefault(
                    tc.index,
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                if tc.id:
                    entry["id"] = tc.id
                if tc.function is not None:
                    entry["function"]["name"] += tc.function.name or ""
                    entry["function"]["arguments"] += tc.function.arguments or ""
            if choice.finish_reason:
                reply.finish_reason = choice.finish_reason
    reply.content = "".join(parts) if parts else None
    reply.refusal = "".join(refusal) or None
    reply.tool_calls = [calls[i] for i in sorted(calls)]
    return reply, usage


KEYLESS = "no-key"  # what the SDK sends as the key of a server that needs none


def _server_sdk(server: ServerSettings) -> Any:
    """The openai SDK client of a named server (``AsyncAzureOpenAI`` for Azure)."""
    import openai

    key = os.environ.get(server.api_key_env) if server.api_key_env else KEYLESS
    if not key:
        raise ModelCallError(
            f"server '{server.name}': the environment variable {server.api_key_env} "
            "(its api_key_env) is not set; export it"
        )
    options: dict[str, Any] = {
        "api_key": key,
        "organization": server.organization,
        "project": server.project,
        "default_headers": dict(server.headers) or None,
    }
    if server.timeout_s is not None:
        options["timeout"] = server.timeout_s
    if server.max_retries is not None:
        options["max_retries"] = server.max_retries
    if server.azure_endpoint:
        return openai.AsyncAzureOpenAI(
            azure_endpoint=server.azure_endpoint, api_version=server.azure_api_version, **options
        )
    return openai.AsyncOpenAI(base_url=server.url, **options)


def sync_sdk(*, azure: bool, **options: Any) -> Any:
    """A synchronous ``openai.OpenAI`` (``openai.AzureOpenAI`` when ``azure``) built with
    ``options`` as they are: for the stand-in promptflow tools a flow's own Python calls
    (``provider.promptflow_tools``), which build theirs as promptflow-tools does."""
    import openai

    return (openai.AzureOpenAI if azure else openai.OpenAI)(**options)


def _with_tool_content(messages: list[dict[str, Any]], content: str) -> list[dict[str, Any]]:
    """``messages`` with ``content`` in place of null on assistant messages with tool calls."""
    return [
        {**m, "content": content}
        if m.get("role") == "assistant" and m.get("tool_calls") and m.get("content") is None
        else m
        for m in messages
    ]


@contextlib.contextmanager
def sdk_errors() -> Iterator[None]:
    """An exception of the openai SDK raised in the block comes out as ``api_error`` makes
    it (a message safe to show); any other as it is."""
    try:
        yield
    except Exception as exc:
        if type(exc).__module__.startswith("openai"):
            raise api_error(exc) from None
        raise


def api_error(exc: Exception) -> ModelCallError:
    """An SDK exception as a ``ModelCallError`` whose message is safe to show."""
    return exc if isinstance(exc, ModelCallError) else _translate(exc, None)


def _translate(exc: Exception, timeout_s: float | None, url: str | None = None) -> ModelCallError:
    error = _translated(exc, timeout_s, url)
    error.retries = _retries_taken(exc)
    return error


def _retries_taken(exc: Exception) -> int:
    """The SDK's retries before ``exc``: its last attempt's ``x-stainless-retry-count`` header."""
    try:
        return int(exc.request.headers.get("x-stainless-retry-count") or 0)  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return 0


def _translated(exc: Exception, timeout_s: float | None, url: str | None) -> ModelCallError:
    import openai

    if isinstance(exc, openai.APITimeoutError):
        return ModelCallError(
            f"the request timed out{f' after {timeout_s:g}s' if timeout_s else ''}", retryable=True
        )
    if isinstance(exc, openai.APIConnectionError):
        base = url or os.environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
        return ModelCallError(f"cannot reach the API at {base}: {redact(str(exc))}", retryable=True)
    if isinstance(exc, openai.APIStatusError):
        message = _api_message(exc)
        retryable = exc.status_code == 429 or exc.status_code >= 500
        return ModelCallError(
            f"API error {exc.status_code}: {redact(message)}",
            status=exc.status_code,
            retryable=retryable,
        )
    return ModelCallError(f"{type(exc).__name__}: {redact(str(exc))}")


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))
