"""Client-side rate limits (``--rpm`` / ``--tpm``) so a batch stays under the account's limits.

Two token buckets, one for requests and one for tokens, each refilled continuously at
``limit / 60`` per second and holding at most one second's worth: ``--rpm 600`` sends at most
about 10 requests in any second, never a burst of 600. A request waits (in arrival order)
until both buckets can cover it; one larger than a bucket's capacity waits for a full bucket
and then overdraws it, so nothing waits forever.

A request's tokens are counted as OpenAI's limiter counts them: the prompt (tiktoken) plus
``max_completion_tokens``; when the reply used more than that estimate, the difference is
charged afterwards.

Retries count too: ``RateLimitedClient`` asks the inner client for single attempts
(``max_retries=0``) and retries failed ones itself, as the SDK would (408, 409, 429, 5xx,
timeouts and connection errors; the server's ``Retry-After`` up to 60 s, else backoff from
0.5 s doubling to 8 s), taking a request and its tokens from the buckets before every attempt.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

from flowrun.provider.interface import ChatReply, EmbedReply, ModelCallError, ModelClient

SDK_RETRIES = 2  # the openai SDK's default, for calls that set no max_retries
RETRY_STATUSES = frozenset({408, 409, 429})  # besides 5xx, as the SDK retries
MAX_RETRY_AFTER_S = 60.0
_EPSILON = 1e-9


class TokenBucket:
    """``per_minute`` units per minute, refilled continuously, holding one second's worth."""

    def __init__(self, per_minute: float, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate = per_minute / 60.0
        self.capacity = max(1.0, self.rate)
        self.level = self.capacity
        self._clock = clock
        self._updated = clock()

    def _refill(self) -> None:
        now = self._clock()
        self.level = min(self.capacity, self.level + (now - self._updated) * self.rate)
        self._updated = now

    def delay(self, amount: float) -> float:
        """Seconds until ``amount`` can be taken (0 if now)."""
        self._refill()
        need = min(amount, self.capacity)
        # within rounding of enough counts as enough: a refill of exactly the missing amount
        # can land a hair short, and waiting "1e-17 s" again can never add to the clock
        return 0.0 if self.level >= need - _EPSILON else (need - self.level) / self.rate

    def take(self, amount: float) -> None:
        self._refill()
        self.level -= amount


class RateLimiter:
    """Requests-per-minute and tokens-per-minute limits, shared by every call of a batch."""

    def __init__(
        self,
        rpm: float | None = None,
        tpm: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.requests = TokenBucket(rpm, clock) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None
        self._sleep = sleep
        self._lock: asyncio.Lock | None = None
        self.waited_s = 0.0

    @property
    def counts_tokens(self) -> bool:
        return self.tokens is not None

    async def acquire(self, tokens: int = 0) -> None:
        """Wait until one request of ``tokens`` tokens fits; callers are served in order."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            while True:
                wait = max(
                    self.requests.delay(1) if self.requests else 0.0,
                    self.tokens.delay(tokens) if self.tokens else 0.0,
                )
                if wait <= 0:
                    break
                self.waited_s += wait
                await self._sleep(wait)
            if self.requests:
                self.requests.take(1)
            if self.tokens:
                self.tokens.take(tokens)

    def charge(self, tokens: int) -> None:
        """Charge tokens a reply used beyond what ``acquire`` counted."""
        if self.tokens and tokens > 0:
            self.tokens.take(tokens)


class RateLimitedClient:
    """A ``ModelClient`` around another whose every attempt (first call and retries) waits for
    the limiter."""

    def __init__(
        self,
        inner: ModelClient,
        limiter: RateLimiter,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.inner = inner
        self.limiter = limiter
        self._sleep = sleep

    async def chat(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        estimate = 0
        if self.limiter.counts_tokens:
            from flowrun.provider.tokens import count_messages

            estimate = count_messages(
                request["messages"], request["model"], request.get("tools")
            ) + (request.get("max_completion_tokens") or 0)
        streamed = False
        relay = None
        if on_text is not None:
            show = on_text

            def relay(text: str) -> None:
                nonlocal streamed
                streamed = True  # text was shown: a retry would show it twice
                show(text)

        reply = await self._attempts(
            lambda: self.inner.chat(request, timeout_s=timeout_s, max_retries=0, on_text=relay),
            estimate,
            max_retries,
            lambda: streamed,
        )
        used = reply.usage.prompt_tokens + reply.usage.completion_tokens
        self.limiter.charge(used - estimate)
        return reply

    async def embed(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> EmbedReply:
        estimate = 0
        if self.limiter.counts_tokens:
            from flowrun.provider.tokens import count_text

            texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
            estimate = sum(count_text(t, request["model"]) for t in texts if isinstance(t, str))
        reply = await self._attempts(
            lambda: self.inner.embed(request, timeout_s=timeout_s, max_retries=0),
            estimate,
            max_retries,
            lambda: False,
        )
        self.limiter.charge(reply.usage.prompt_tokens - estimate)
        return reply

    async def _attempts(
        self,
        attempt: Callable[[], Awaitable[Any]],
        tokens: int,
        max_retries: int | None,
        streamed: Callable[[], bool],
    ) -> Any:
        """Run ``attempt`` until it succeeds or the retries are spent; each takes a token."""
        retries = SDK_RETRIES if max_retries is None else max_retries
        for number in range(retries + 1):
            await self.limiter.acquire(tokens)
            try:
                reply = await attempt()
            except ModelCallError as exc:
                if number >= retries or not _retryable(exc) or streamed():
                    raise
                await self._sleep(_retry_delay(exc, number))
                continue
            reply.retries += number
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _retryable(exc: ModelCallError) -> bool:
    """What the SDK retries: timeouts, connection errors, 408, 409, 429 and 5xx, unless the
    server's ``x-should-retry`` says otherwise."""
    says = _headers(exc).get("x-should-retry")
    if says in ("true", "false"):
        return says == "true"
    return exc.retryable or exc.status in RETRY_STATUSES


def _retry_delay(exc: ModelCallError, number: int) -> float:
    """The SDK's wait before retry ``number + 1``: the server's Retry-After when it sent one,
    else 0.5 s doubling to 8 s, less up to 25 %."""
    headers = _headers(exc)
    for key, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            seconds = float(headers.get(key)) * scale  # type: ignore[arg-type]
        except (TypeError, ValueError):
            continue
        if 0 < seconds <= MAX_RETRY_AFTER_S:
            return seconds
    return min(0.5 * 2.0**number, 8.0) * (1 - 0.25 * random.random())


def _headers(exc: ModelCallError) -> Any:
    """The response headers of the SDK error behind ``exc`` (``{}`` when there is none)."""
    response = getattr(exc.__context__, "response", None)
    return getattr(response, "headers", None) or {}
