"""The services a run shares: the model client, prices, budget, cache and tools.

Every model call goes through ``Services.chat`` / ``Services.embed``: the context-window
check, the budget reservation, the response cache, the call itself, pricing and recording.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from flowrun.engine.budget import BudgetGate
from flowrun.engine.reply_checks import check_cap, check_vectors
from flowrun.engine.step_record import CallSite
from flowrun.engine.transcripts import chat_entry, embed_entry
from flowrun.errors import StepError
from flowrun.provider.catalog import model_info
from flowrun.provider.interface import (
    ChatReply,
    EmbedReply,
    ModelCallError,
    ModelClient,
    cap_parameter,
)
from flowrun.provider.pricing import PriceTable, load_price_table
from flowrun.provider.server_clients import ServerClients
from flowrun.results import CallRecord

#: One INFO line per model request and per reply (``flowrun run -v`` shows them on stderr).
calls_log = logging.getLogger("flowrun.calls")

if TYPE_CHECKING:
    from flowrun.engine.tools import Toolbox

Reply = TypeVar("Reply", ChatReply, EmbedReply)

# The run a step belongs to (set by the executor; services are shared by a batch's runs).
CURRENT_RUN_ID: ContextVar[str | None] = ContextVar("flowrun_run_id", default=None)
#: The step (or foreach item) label of the model call being made, for a client that names its
#: requests by it (the Batch API's custom_id).
CURRENT_CALL: ContextVar[str] = ContextVar("flowrun_call_label", default="call")


class ResponseCache:
    """Interface of the opt-in response cache (the run store implements it)."""

    def get(self, request: dict[str, Any]) -> dict[str, Any] | None:  # pragma: no cover - interface
        return None

    def put(self, request: dict[str, Any], reply: dict[str, Any]) -> None:  # pragma: no cover
        return None


@dataclass
class Services:
    client: ModelClient
    prices: PriceTable = field(default_factory=load_price_table)
    servers: ServerClients | None = None  # the named servers' clients (steps with server:)
    server_prices: dict[str, PriceTable] = field(default_factory=dict)  # by server name
    budget: BudgetGate | None = None
    cache: ResponseCache | None = None
    cache_all: bool = False
    toolbox: Toolbox | None = None
    on_text: Callable[[str, str], None] | None = None
    # (step id, "waiting" | "running" | "done", its StepResult when done): terminal progress
    on_step: Callable[[str, str, Any], None] | None = None
    threads: Any = None  # the run store, for chat steps with thread:
    dry_run: bool = False  # estimate: requests are built but never sent
    transcripts: bool = True  # keep what each call sent and got (off: --no-transcripts)
    batch_prices: bool = False  # the Batch API: calls priced at its rates (batch_api/runner)
    #: the steps that start in the task running them (``engine.eager``): model steps without
    #: tools or a thread, when the client never waits for the network in a step (the Batch
    #: API's, whose runner sets them)
    eager_steps: frozenset[str] = frozenset()
    #: each step's settings, looked up on its first execution in this run (``steps.base``)
    step_settings: dict[int, Any] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    #: whether the client is ``--mock``'s fake model (its calls have no cost)
    mock: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.mock = is_mock(self.client)

    async def aclose(self) -> None:
        """Close the run's client and every named server's."""
        try:
            await self.client.aclose()
        finally:
            if self.servers is not None:
                await self.servers.aclose()

    def client_for(self, env: CallSite) -> Any:
        """The client of the step's server (the run's client for a step without one)."""
        if self.servers is None:  # (every step: no server is named; a Batch API run)
            return self.client
        name = env.setting("server")
        if name and name in self.servers.settings:
            return self.servers.client(name)
        return self.client

    def prices_for(self, env: CallSite) -> PriceTable:
        """The price table of the step's server."""
        if not self.server_prices:  # (no server has prices of its own)
            return self.prices
        name = env.setting("server")
        return self.server_prices.get(name, self.prices) if name else self.prices

    # --- chat ---------------------------------------------------------------------
    async def chat(self, env: CallSite, request: dict[str, Any]) -> ChatReply:
        """Make one chat call for ``env``'s step and record it."""
        model = request["model"]
        env.record.model = env.record.model or model  # known even if the call fails
        info = model_info(model)
        max_out = request.get("max_completion_tokens") or (info.max_output_tokens if info else 0)
        prompt_tokens: int | None = None
        if info and _size_bound(request, model) + max_out > info.context_window:
            from flowrun.provider.tokens import count_request

            prompt_tokens = count_request(request, model)
            _check_window(env, request, prompt_tokens, info.context_window)
        use_cache = self._use_cache(env)
        if use_cache:
            hit = self.cache.get(request)  # type: ignore[union-attr]
            if hit is not None:
                reply = ChatReply(**hit)
                reply.usage = _usage(hit.get("usage"))
                return self._from_cache(env, request, reply, chat_entry)
        reservation = None
        if self.budget is not None:
            if prompt_tokens is None:
                from flowrun.provider.tokens import count_request

                prompt_tokens = count_request(request, model)
            reservation = self.budget.reserve(
                env.label, model, prompt_tokens, max_out, prices=self.prices_for(env)
            )
        if calls_log.isEnabledFor(logging.INFO):
            messages = len(request.get("messages") or ())
            calls_log.info(
                "request %s: %s, %d message%s, max %s output tokens",
                env.label,
                model,
                messages,
                "" if messages == 1 else "s",
                max_out or "?",
            )
        on_text = (
            (lambda text: self.on_text(env.label, text))
            if self.on_text and request.get("stream")
            else None
        )
        reply = await self._call(
            env,
            request,
            reservation,
            chat_entry,
            lambda client: client.chat(
                request,
                timeout_s=env.setting("timeout_s"),
                max_retries=env.setting("max_retries"),
                on_text=on_text,
            ),
        )
        for note in reply.notes:
            env.warn(f"step '{env.label}': {note}")
        cap = request.get("max_completion_tokens")
        if cap and reply.usage.completion_tokens > cap:  # (else nothing to check)
            check_cap(env, request, reply, cap_parameter(self.client_for(env)))
        if use_cache:
            self.cache.put(request, _reply_dict(reply))  # type: ignore[union-attr]
        return reply

    # --- embeddings ---------------------------------------------------------------
    async def embed(self, env: CallSite, request: dict[str, Any]) -> EmbedReply:
        """Make one embeddings call for ``env``'s step and record it."""
        from flowrun.provider.tokens import count_text, counts_exact

        model = request["model"]
        env.record.model = env.record.model or model
        texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
        info = model_info(model)
        if info and info.embedding:  # each input must fit the model's window
            for i, text in enumerate(texts):
                if len(text.encode("utf-8")) > info.context_window:  # else it surely fits
                    n = count_text(text, model)
                    if n > info.context_window and not counts_exact(model):
                        _warn_approximate(
                            env,
                            f"an input may pass {model}'s limit of "
                            f"{info.context_window:,} tokens per input",
                        )
                    elif n > info.context_window:
                        where = f"input {i}" if isinstance(request["input"], list) else "the input"
                        raise StepError(
                            f"{where} has {n:,} tokens, more than {model}'s limit of "
                            f"{info.context_window:,} tokens per input; split it into chunks"
                        )
        use_cache = self._use_cache(env)
        if use_cache:
            hit = self.cache.get(request)  # type: ignore[union-attr]
            if hit is not None and "vectors" in hit:
                cached = EmbedReply(hit["vectors"], _usage(hit.get("usage")), hit.get("model", ""))
                return self._from_cache(env, request, cached, embed_entry)
        reservation = None
        if self.budget is not None:
            tokens = sum(count_text(t, model) for t in texts)
            reservation = self.budget.reserve(
                env.label, model, tokens, 0, prices=self.prices_for(env)
            )
        if calls_log.isEnabledFor(logging.INFO):
            calls_log.info(
                "request %s: %s, %d input%s",
                env.label,
                model,
                len(texts),
                "" if len(texts) == 1 else "s",
            )
        reply = await self._call(
            env,
            request,
            reservation,
            embed_entry,
            lambda client: client.embed(
                request, timeout_s=env.setting("timeout_s"), max_retries=env.setting("max_retries")
            ),
        )
        check_vectors(env, request, reply, len(texts))
        if use_cache:
            stored = {
                "vectors": reply.vectors,
                "usage": reply.usage.to_dict(),
                "model": reply.model,
            }
            self.cache.put(request, stored)  # type: ignore[union-attr]
        return reply

    async def _call(
        self,
        env: CallSite,
        request: dict[str, Any],
        reservation: Any,
        entry: Callable[..., Any],
        send: Callable[[Any], Awaitable[Reply]],
    ) -> Reply:
        """Send ``request`` to the step's client (``send(client)``), then record the call,
        transcribe it and settle its reservation; a failure is recorded the same way and
        raised as the step's error."""
        model = request["model"]
        started = time.perf_counter()
        label = CURRENT_CALL.set(env.label)
        try:
            reply = await send(self.client_for(env))
        except ModelCallError as exc:
            raise self._failed(env, model, request, exc, started, reservation, entry) from None
        finally:
            CURRENT_CALL.reset(label)
        latency = time.perf_counter() - started
        cost = self._record(
            env,
            model,
            reply.usage,
            getattr(reply, "finish_reason", None),
            latency,
            reply.retries,
            approximate=reply.approximate_usage,
        )
        if self._transcribe(env):
            env.record.transcript.append(
                entry(request, reply, latency_s=latency, retries=reply.retries)
            )
        if reservation is not None:  # a local count is no bill: charge the worst case reserved
            self.budget.settle(reservation, None if reply.approximate_usage else cost)  # type: ignore[union-attr]
        return reply

    def _from_cache(
        self, env: CallSite, request: dict[str, Any], reply: Reply, entry: Callable[..., Any]
    ) -> Reply:
        """A reply the response cache had: recorded (free, no time) and transcribed as such."""
        finish = getattr(reply, "finish_reason", None)
        self._record(env, request["model"], reply.usage, finish, 0.0, 0, cached=True)
        if self._transcribe(env):
            env.record.transcript.append(entry(request, reply, latency_s=0.0, cached=True))
        return reply

    def _transcribe(self, env: CallSite) -> bool:
        """Transcripts are on unless ``--no-transcripts`` or ``defaults: {transcripts: false}``."""
        return self.transcripts and env.setting("transcripts") is not False

    def _use_cache(self, env: CallSite) -> bool:
        """``--cache`` (every model call), or ``cache: true`` on the step or in defaults."""
        return self.cache is not None and (self.cache_all or bool(env.setting("cache")))

    def _record_failure(self, env: CallSite, model: str, duration: float, retries: int) -> None:
        """A call that failed after ``retries``: recorded for them, at no cost."""
        calls_log.info(
            "failed  %s: %s after %.2fs and %d retr%s",
            env.label,
            model,
            duration,
            retries,
            "y" if retries == 1 else "ies",
        )
        env.record.calls.append(
            CallRecord(model, _usage(None), 0.0, round(duration, 4), retries, failed=True)
        )

    def _record(
        self,
        env: CallSite,
        model: str,
        usage: Any,
        finish_reason: str | None,
        duration: float,
        retries: int,
        *,
        cached: bool = False,
        approximate: bool = False,
    ) -> float | None:
        batch = self.batch_prices  # the Batch API: its prices; a call's time is its wave's
        mock = self.mock
        if mock or cached:  # no price: a mock call has no cost, a cached one costs nothing
            price, cost = None, None if mock else 0.0
        else:
            price = self.prices_for(env).price(model)  # (looked up once)
            cost = None if price is None else price.cost(usage, batch=batch)
        discounted = batch and price is not None and price.has_batch_price
        duration = 0.0 if batch else round(duration, 4)
        if calls_log.isEnabledFor(logging.INFO):
            calls_log.info(
                "reply   %s: %s, %s prompt + %s completion tokens, %s",
                env.label,
                model,
                getattr(usage, "prompt_tokens", "?"),
                getattr(usage, "completion_tokens", "?"),
                "from the cache" if cached else f"{duration:.2f}s",
            )
        env.record.calls.append(
            CallRecord(  # (by position, in the order of its fields, ``failed`` False)
                model,
                usage,
                cost,
                duration,
                retries,
                finish_reason,
                cached,
                discounted,
                False,
                approximate,
                mock,
            )
        )
        env.record.model = env.record.model or model
        return cost

    def _failed(
        self,
        env: CallSite,
        model: str,
        request: dict[str, Any],
        exc: ModelCallError,
        started: float,
        reservation: Any,
        entry: Callable[..., Any],
    ) -> StepError:
        """A call that failed: its reservation settled, the failure recorded (and transcribed);
        the step's error to raise."""
        if reservation is not None:  # an answer we could not trust may still be billed
            self.budget.settle(reservation, None if exc.answered else 0.0)  # type: ignore[union-attr]
        latency = time.perf_counter() - started
        self._record_failure(env, model, latency, exc.retries)
        if self._transcribe(env):
            env.record.transcript.append(
                entry(request, latency_s=latency, retries=exc.retries, error=str(exc))
            )
        return StepError(str(exc))


def is_mock(client: Any) -> bool:
    """Whether ``client`` (or the client it wraps, e.g. rate limited) is ``--mock``'s fake model."""
    while client is not None:
        if getattr(client, "mock", False) is True:
            return True
        client = getattr(client, "inner", None)
    return False


def _check_window(env: CallSite, request: dict[str, Any], prompt_tokens: int, window: int) -> None:
    """Refuse a prompt that cannot fit the context window, when the count is exact.

    An approximate count (no tiktoken encodings) can be far off either way, so then the call
    is made and the step warns instead.
    """
    from flowrun.provider.tokens import counts_exact

    model, reserved = request["model"], request.get("max_completion_tokens") or 0
    if prompt_tokens + reserved <= window:
        return
    if not counts_exact(model):
        _warn_approximate(
            env, f"the prompt may not fit {model}'s context window of {window:,} tokens"
        )
        return
    raise StepError(
        f"the prompt has {prompt_tokens:,} tokens"
        + (f" + max_completion_tokens {reserved:,}" if reserved else "")
        + f", more than {model}'s context window of {window:,} tokens; "
        "shorten the input or use a larger model"
    )


def _warn_approximate(env: CallSite, what: str) -> None:
    """One warning per step that a limit was not enforced on an approximate count."""
    env.warn(
        f"step '{env.step_id}': {what} by an approximate count (the tiktoken encodings could "
        "not be loaded), so it was sent anyway"
    )


def _size_bound(request: dict[str, Any], model: str) -> int:
    """A cheap upper bound of the prompt's tokens: a token covers at least one UTF-8 byte."""
    size = 0
    for message in request.get("messages", []):
        content = message.get("content")
        if isinstance(content, str):
            size += (len(content) if content.isascii() else len(content.encode("utf-8"))) + 8
        elif isinstance(content, list):
            for part in content:
                if part.get("type") == "image_url":
                    from flowrun.provider.tokens import count_image

                    size += count_image(part.get("image_url") or {}, model)
                else:
                    size += len(str(part.get("text", "")).encode("utf-8")) + 8
        for call in message.get("tool_calls") or []:
            size += len(json.dumps(call).encode("utf-8"))
    for key in ("tools", "response_format"):
        if request.get(key):
            size += len(json.dumps(request[key]).encode("utf-8"))
    return size


def _usage(data: Any) -> Any:
    from flowrun.results import Usage

    return Usage.from_dict(data)


def _reply_dict(reply: ChatReply) -> dict[str, Any]:
    return {
        "content": reply.content,
        "tool_calls": reply.tool_calls,
        "refusal": reply.refusal,
        "finish_reason": reply.finish_reason,
        "usage": reply.usage.to_dict(),
        "model": reply.model,
    }
