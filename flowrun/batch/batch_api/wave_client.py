"""The model client of a Batch API run: it parks each request with the coordinator."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from flowrun.batch.batch_api.lines import (
    CHAT,
    EMBEDDINGS,
    Outcome,
    batch_body,
    body_digest,
    custom_id,
    encode_body,
    encode_line,
)
from flowrun.engine.services import CURRENT_CALL
from flowrun.errors import Suspended
from flowrun.provider.interface import ChatReply, EmbedReply, ModelCallError, cap_parameter
from flowrun.provider.usage import count_missing_chat, count_missing_embed

if TYPE_CHECKING:
    from flowrun.batch.batch_api.coordinator import WaveCoordinator

DEFAULT_RETRIES = 2  # the openai SDK's default, used when a step sets no max_retries
#: The labels (step or foreach item) of the running step that had a request answered in this
#: execution of the record; set per step by ``WaveExecutor`` (None: the step never suspends).
ANSWERED: ContextVar[set[str] | None] = ContextVar("flowrun_batch_answered", default=None)


class WaveClient:
    """The model client of a Batch API run (a ``flowrun.provider.interface.ModelClient``):
    it parks each request with the coordinator, under the record's and step's custom_id.

    A step's first request whose answer is not in yet *suspends* the record (``Suspended``):
    it leaves memory, and runs again (its completed steps kept) when the answer is collected,
    which then comes from the coordinator at once. Later requests of the same step (a
    tool-calling round, an extract repair, a retry) wait in memory instead, so nothing the
    step did before them (a tool call) runs twice."""

    def __init__(
        self, coordinator: WaveCoordinator, record_index: Callable[[], int | None]
    ) -> None:
        self.coordinator = coordinator
        self.record_index = record_index

    @property
    def cap_parameter(self) -> str:
        """What the batch's server takes the output cap as (its requests are adapted to it)."""
        return cap_parameter(self.coordinator.transport.client)

    def _body(self, request: dict[str, Any]) -> dict[str, Any]:
        """The request as a batch line carries it, adapted to the batch's server (its cap
        parameter, Azure deployment, tool-call content) as a live call would be."""
        adapted = getattr(self.coordinator.transport.client, "adapted", None)
        return batch_body(adapted(request, copy=False) if adapted is not None else request)

    @property
    def mock(self) -> bool:
        """``--mock --via batch-api``: the batches are answered by the fake model (no dollars)."""
        return getattr(self.coordinator.transport.client, "mock", False) is True

    async def chat(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        outcome, attempt = await self._call(CHAT, self._body(request), 1, max_retries)
        if not isinstance(outcome.reply, ChatReply):
            raise ModelCallError("the batch answered a chat request with something else")
        outcome.reply.retries = attempt
        if outcome.reply.approximate_usage:  # the output line had no usage: count it here
            outcome.reply.usage = count_missing_chat(request, outcome.reply)
        return outcome.reply

    async def embed(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> EmbedReply:
        body = self._body(request)
        inputs = len(body["input"]) if isinstance(body.get("input"), list) else 1
        outcome, attempt = await self._call(EMBEDDINGS, body, inputs, max_retries)
        if not isinstance(outcome.reply, EmbedReply):
            raise ModelCallError("the batch answered an embeddings request with something else")
        outcome.reply.model = outcome.reply.model or body["model"]
        outcome.reply.retries = attempt
        if outcome.reply.approximate_usage:
            outcome.reply.usage = count_missing_embed(request)
        return outcome.reply

    async def _call(
        self, url: str, body: dict[str, Any], inputs: int, max_retries: int | None
    ) -> tuple[Outcome, int]:
        index = self.record_index()
        label = CURRENT_CALL.get()
        answered = ANSWERED.get()
        body_json = encode_body(body)
        digest = body_digest(body_json)
        model = body["model"]
        tries = 1 + (DEFAULT_RETRIES if max_retries is None else max_retries)
        attempt = made = 0
        while True:
            cid = custom_id(index or 0, label, digest, attempt)
            if answered is not None and label not in answered and index is not None:
                # the step's first request: suspend the record until its batch is collected
                found = self.coordinator.ask(cid, index, url, model, body_json, inputs)
                if found is None:
                    raise Suspended()
                outcome = found
            else:
                line = encode_line(cid, url, body_json)
                outcome = await self.coordinator.request(cid, url, model, line, inputs)
            attempt += 1
            if outcome.stale:  # an earlier process's failure: the next attempt may suspend too
                continue
            if answered is not None:
                answered.add(label)
            made += 1
            if outcome.ok:
                return outcome, made - 1
            if not outcome.retryable or made >= tries:
                break
        attempts = f" (after {made} attempts)" if made > 1 else ""
        raise ModelCallError(f"{outcome.error}{attempts}", retryable=outcome.retryable)

    async def aclose(self) -> None:
        return None
