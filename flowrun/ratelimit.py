"""Client-side rate limits (``--rpm`` / ``--tpm``) so a batch stays under the account's limits.

Two token buckets, one for requests and one for tokens, each refilled continuously at
``limit / 60`` per second and holding at most one second's worth: ``--rpm 600`` sends at most
about 10 requests in any second, never a burst of 600. A request waits (in arrival order)
until both buckets can cover it; one larger than a bucket's capacity waits for a full bucket
and then overdraws it, so nothing waits forever.

A request's tokens are counted as OpenAI's limiter counts them: the prompt (tiktoken) plus
``max_completion_tokens``; when the reply used more than that estimate, the difference is
charged afterwards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


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
        return 0.0 if self.level >= need else (need - self.level) / self.rate

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
    """A ``ModelClient`` whose calls wait for the ``RateLimiter`` first."""

    def __init__(self, inner: Any, limiter: RateLimiter) -> None:
        self.inner = inner
        self.limiter = limiter

    async def chat(self, request: dict[str, Any], **options: Any) -> Any:
        estimate = 0
        if self.limiter.counts_tokens:
            from .tokens import count_messages

            estimate = count_messages(
                request["messages"], request["model"], request.get("tools")
            ) + (request.get("max_completion_tokens") or 0)
        await self.limiter.acquire(estimate)
        reply = await self.inner.chat(request, **options)
        used = reply.usage.prompt_tokens + reply.usage.completion_tokens
        self.limiter.charge(used - estimate)
        return reply

    async def embed(self, request: dict[str, Any], **options: Any) -> Any:
        estimate = 0
        if self.limiter.counts_tokens:
            from .tokens import count_text

            texts = request["input"] if isinstance(request["input"], list) else [request["input"]]
            estimate = sum(count_text(t, request["model"]) for t in texts if isinstance(t, str))
        await self.limiter.acquire(estimate)
        reply = await self.inner.embed(request, **options)
        self.limiter.charge(reply.usage.prompt_tokens - estimate)
        return reply

    async def aclose(self) -> None:
        await self.inner.aclose()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)
