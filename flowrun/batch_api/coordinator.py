"""Waves: park every record's model requests, submit them together, hand the results back.

Records run as ordinary executors whose model client (``RecordClient``) does not call the
API: it parks the request under a deterministic ``custom_id`` and awaits a future. When no
record can move (every live record waits on a parked request, or has finished; no tool is
running), the coordinator submits one wave: the parked requests grouped by endpoint and
model, split into files within the API's limits, uploaded, batched (``completion_window:
24h``), polled with backoff, downloaded and matched by ``custom_id``. Each future is
resolved the moment its batch is collected; the records then advance to the next wave.

A failed request (error file, expired or cancelled batch) is asked for again with the next
attempt's ``custom_id`` in the next wave, up to ``max_retries``; then its step fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from ..budget import BudgetGate, Reservation
from ..client import ChatReply, EmbedReply, ModelCallError
from .lines import (
    CHAT,
    EMBEDDINGS,
    Limits,
    Outcome,
    Pending,
    batch_body,
    body_digest,
    custom_id,
    encode_body,
    encode_line,
    file_bytes,
    pack,
    parse_result_line,
)
from .state import TERMINAL, BatchState
from .transport import BatchSnapshot, BatchTransport

#: The step (or foreach item) label of the request being made; set by ``BatchServices``.
CURRENT_LABEL: ContextVar[str] = ContextVar("flowrun_batch_label", default="call")
DEFAULT_RETRIES = 2  # the openai SDK's default, used when a step sets no max_retries
POLL_ENV = "FLOWRUN_BATCH_POLL"  # "INITIAL[,MAX]" seconds between polls
LIMITS_ENV = "FLOWRUN_BATCH_LIMITS"  # "REQUESTS[,BYTES[,EMBEDDING_INPUTS]]" per file (tests)
CREATE_ATTEMPTS = 4  # a batch create that fails retryably is looked for, then tried again
TOKEN_LIMIT = "token_limit_exceeded"  # the error of a batch refused for the enqueued tokens
COLLECT_CHUNK = 2_000  # result lines parsed, stored and handed out together
COLLECT_BYTES = 4 << 20  # ... or fewer, when they are this many bytes


@dataclass(frozen=True)
class WaveSettings:
    """Polling and file limits. Polls start at ``poll_initial`` s and grow 1.5x to ``poll_max``."""

    poll_initial: float = 5.0
    poll_max: float = 60.0
    limits: Limits = field(default_factory=Limits)
    max_poll_errors: int = 20  # consecutive failed polls of one batch before its requests fail
    #: times a batch refused for the enqueued-token limit is created again (not an attempt)
    token_limit_holds: int = 5

    @classmethod
    def from_env(cls, **overrides: Any) -> WaveSettings:
        values: dict[str, Any] = {}
        if raw := os.environ.get(POLL_ENV):
            first, _, last = raw.partition(",")
            values["poll_initial"] = float(first)
            values["poll_max"] = float(last or max(float(first), cls.poll_max))
        if raw := os.environ.get(LIMITS_ENV):
            given = [int(x) for x in raw.split(",") if x.strip()]
            values["limits"] = Limits(*given[:3])
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


class WaveBudget(BudgetGate):
    """Books each parked request's worst case at Batch API prices; the wave is checked whole.

    ``reserve`` never refuses (a request is only parked); the coordinator refuses a wave whose
    booked worst case could take the run past the limit, before anything is uploaded.
    """

    def reserve(
        self,
        label: str,
        model: str,
        prompt_tokens: int,
        max_completion_tokens: int,
        *,
        batch: bool = True,
    ) -> Reservation:
        worst = self.prices.worst_case(model, prompt_tokens, max_completion_tokens, batch=True)
        if worst is None:
            return super().reserve(label, model, prompt_tokens, max_completion_tokens, batch=True)
        self.reserved += worst
        return Reservation(worst)

    def over(self) -> bool:
        return self.spent + self.reserved > self.limit + 1e-12

    def refusal(self, wave: int, requests: int) -> str:
        return (
            f"budget: wave {wave} ({requests} requests) could cost up to ${self.reserved:.6f} at "
            f"Batch API prices, which could take the run past its budget of ${self.limit:g} "
            f"(spent ${self.spent:.6f}); nothing was submitted. Raise budget.max_cost_usd or "
            "--max-cost, or lower max_completion_tokens."
        )


@dataclass
class Tracked:
    """A submitted file and its batch, followed until its results are stored."""

    file_id: str
    batch_id: str
    endpoint: str
    model: str
    custom_ids: list[str]
    snapshot: BatchSnapshot | None = None
    poll_errors: int = 0
    cancelled: bool = False  # this process asked the API to cancel it
    holds: int = 0  # times it was created again after the enqueued-token limit refused it
    earlier: set[str] = field(default_factory=set)  # those refused batches' ids


@dataclass
class WaveStatus:
    """What the progress display shows."""

    wave: int
    phase: str  # waiting | submitting | polling | collecting
    batches: list[Tracked]
    requests: int
    records_done: int = 0
    records_failed: int = 0


class WaveCoordinator:
    """Parks requests, runs the waves, resolves each request's future with its ``Outcome``."""

    def __init__(
        self,
        transport: BatchTransport,
        state: BatchState,
        run_id: str,
        *,
        settings: WaveSettings | None = None,
        budget: WaveBudget | None = None,
        on_status: Callable[[WaveStatus], None] | None = None,
        on_refusal: Callable[[str], None] | None = None,
    ) -> None:
        self.transport = transport
        self.state = state
        self.run_id = run_id
        self.settings = settings or WaveSettings.from_env()
        self.budget = budget
        self.on_status = on_status
        self.on_refusal = on_refusal
        # requests an earlier process of this run submitted: answered from the store or their batch
        self.known: dict[str, tuple[str, bool]] = state.known_requests(run_id)
        self.wave = max((f.wave for f in state.files(run_id, limit=1)), default=0)
        self.parked: dict[tuple[str, str], list[Pending]] = defaultdict(list)
        self.attached: dict[str, list[str]] = defaultdict(list)  # file_id -> custom_ids
        self.waiting: dict[str, asyncio.Future[Outcome]] = {}
        self.busy = 0
        self.submitted = 0  # requests submitted by this process
        self.local_seconds = 0.0  # time spent in this module's own work (not the API's)
        self.broken: BaseException | None = None
        self.quiet_seconds = 0.0  # records working locally until the next wave
        self._not_busy = asyncio.Event()
        self._not_busy.set()
        self._wake = asyncio.Event()
        self._activity = 0
        self._current: WaveStatus | None = None
        state.clear_cancel(run_id)  # running (or resuming) the run again lifts a cancel

    # --- parking (called by RecordClient) ------------------------------------------------
    def request(
        self, cid: str, endpoint: str, model: str, line: bytes, inputs: int
    ) -> asyncio.Future[Outcome]:
        """The future of one request: from the store, an earlier batch, or the next wave."""
        if cid in self.waiting:  # the same request of the same record and step: ask once
            return self.waiting[cid]
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        if self.broken is not None:
            future.set_result(Outcome(False, error=f"the wave loop failed: {self.broken!r}"))
            return future
        known = self.known.get(cid)
        if known is not None and known[1]:
            outcome = parse_result_line(self.state.result(self.run_id, cid) or "{}")[1]
            # an earlier process's failure: ask again, under the next attempt's id
            outcome.stale = not outcome.ok
            future.set_result(outcome)
            return future
        if known is not None:
            self.attached[known[0]].append(cid)
        else:
            self.parked[(endpoint, model)].append(Pending(cid, line, inputs))
        self.waiting[cid] = future
        self._activity += 1
        self._wake.set()
        return future

    @contextlib.contextmanager
    def busy_span(self) -> Iterator[None]:
        """Marks work the event loop cannot see (tools in threads, async tools' I/O)."""
        self.busy += 1
        self._not_busy.clear()
        try:
            yield
        finally:
            self.busy -= 1
            self._activity += 1
            if not self.busy:
                self._not_busy.set()

    def touch(self) -> None:
        """Note that a record started or finished (the quiet check restarts)."""
        self._activity += 1

    # --- the wave loop ---------------------------------------------------------------------
    async def run(self) -> None:
        """Run waves until cancelled (the runner cancels it when every record is done).

        An unexpected error fails every waiting request (so no record waits forever), then
        propagates.
        """
        try:
            while True:
                started = time.perf_counter()
                await self._until_quiet()
                self.quiet_seconds += time.perf_counter() - started
                await self._run_wave()
        except Exception as exc:
            self.broken = exc
            self.fail_all(f"the wave loop failed: {exc!r}")
            raise

    async def _until_quiet(self) -> None:
        """Return when requests wait and nothing else can move."""
        loop = asyncio.get_running_loop()
        quiet_rounds = 0
        while True:
            if not (self.parked or self.attached):
                self._wake.clear()
                await self._wake.wait()
                continue
            if self.busy:
                await self._not_busy.wait()
                continue
            mark = self._activity
            await asyncio.sleep(0)
            if self.busy or mark != self._activity:
                quiet_rounds = 0
                continue
            ready = getattr(loop, "_ready", None)  # CPython's queue of runnable callbacks
            if ready is None:  # another loop implementation: wait a few idle rounds instead
                quiet_rounds += 1
                if quiet_rounds < 50:
                    continue
            elif ready:
                continue
            return

    async def _run_wave(self) -> None:
        started = time.perf_counter()
        api_before = self.transport.seconds
        groups, self.parked = self.parked, defaultdict(list)
        attached, self.attached = self.attached, defaultdict(list)
        if groups:
            self.wave += 1
            number = self.wave
        else:  # only batches an earlier process submitted: show their wave again
            rows = (self.state.file(file_id) for file_id in attached)
            number = max((row.wave for row in rows if row is not None), default=self.wave)
        count = sum(len(items) for items in groups.values())
        status = WaveStatus(number, "submitting", [], count + sum(map(len, attached.values())))
        self._current = status
        if groups and self.state.cancel_requested(self.run_id):
            self._refuse(
                groups, "the run was cancelled (flowrun batches cancel); resume it to go on"
            )
            groups = {}
        if groups and self.budget is not None and self.budget.over():
            message = self.budget.refusal(self.wave, count)
            self._refuse(groups, message)
            groups = {}
            if self.on_refusal is not None:
                self.on_refusal(message)
        self._report()
        jobs = [
            self._submit(endpoint, model, chunk, n)
            for n, ((endpoint, model), chunk) in enumerate(
                (
                    (key, chunk)
                    for key, items in groups.items()
                    for chunk in pack(items, self.settings.limits)
                ),
                start=1,
            )
        ]
        jobs += [self._reattach(file_id) for file_id in attached]
        status.batches = [t for t in await asyncio.gather(*jobs) if t is not None]
        status.phase = "polling"
        self._report()
        self.local_seconds += time.perf_counter() - started - (self.transport.seconds - api_before)
        await self._poll(status.batches)
        status.phase = "waiting"
        self._report()

    def _refuse(self, groups: dict[tuple[str, str], list[Pending]], message: str) -> None:
        outcome = Outcome(False, error=message, retryable=False)
        for items in groups.values():
            for item in items:
                self._resolve(item.custom_id, outcome)

    # --- submitting ------------------------------------------------------------------------
    async def _submit(
        self, endpoint: str, model: str, items: list[Pending], n: int
    ) -> Tracked | None:
        data = file_bytes(items)
        cids = [p.custom_id for p in items]
        name = f"flowrun-{self.run_id}-w{self.wave}-{n}.jsonl"
        try:
            file_id = await self.transport.upload(name, data)
        except ModelCallError as exc:
            for cid in cids:  # nothing was submitted: the next attempt goes in the next wave
                self._resolve(
                    cid, Outcome(False, error=f"upload failed: {exc}", retryable=exc.retryable)
                )
            return None
        self.state.file_uploaded(self.run_id, self.wave, file_id, endpoint, model, cids, len(data))
        self.submitted += len(cids)
        return await self._create(file_id, endpoint, model, cids)

    async def _create(
        self,
        file_id: str,
        endpoint: str,
        model: str,
        cids: list[str],
        since: float | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Tracked | None:
        """Create the batch of an uploaded file, exactly once.

        A create that timed out or failed with 5xx may still have created the batch, so
        before trying again flowrun looks for a batch on this file; a retried create never
        makes a second batch.
        """
        metadata = {"flowrun_run_id": self.run_id, "flowrun_wave": str(self.wave)}
        since = time.time() - 600 if since is None else since
        for attempt in range(CREATE_ATTEMPTS):
            try:
                snapshot = await self.transport.create(file_id, endpoint, metadata)
                break
            except ModelCallError as exc:
                if not exc.retryable:  # refused: no batch exists; its requests failed
                    self.state.batch_status(file_id, "failed", error=str(exc))
                    message = f"creating the batch failed: {exc}"
                    self._finish_file(file_id, cids, set(), message, exc.status or 400)
                    return None
                failure = exc
            found = await self._find_batch(file_id, since, exclude)
            if found is not None:
                snapshot = found
                break
            await asyncio.sleep(min(30.0, self.settings.poll_initial * 2**attempt))
        else:
            self._give_up(cids, f"creating the batch failed: {failure}")
            return None
        self.state.batch_status(file_id, snapshot.status, batch_id=snapshot.id)
        tracked = Tracked(file_id, snapshot.id, endpoint, model, cids, snapshot)
        if self.state.cancel_requested(self.run_id):  # cancelled while create was answering
            await self._cancel(tracked)
        return tracked

    async def _find_batch(
        self, file_id: str, since: float, exclude: frozenset[str] = frozenset()
    ) -> BatchSnapshot | None:
        with contextlib.suppress(ModelCallError):
            return (await self.transport.find({file_id}, since, exclude)).get(file_id)
        return None

    async def _reattach(self, file_id: str) -> Tracked | None:
        """Follow a file submitted before a crash: find its batch, or create it if none exists."""
        row = self.state.file(file_id)
        if row is None:  # pragma: no cover - the tables say otherwise
            raise RuntimeError(f"file {file_id} is not in the run store")
        cids = self.state.file_requests(self.run_id, file_id)
        if row.batch_id is not None:
            return Tracked(file_id, row.batch_id, row.endpoint, row.model, cids)
        since = row.submitted_ts - 600
        try:
            found = (await self.transport.find({file_id}, since)).get(file_id)
        except ModelCallError as exc:
            self._give_up(cids, f"listing batches failed: {exc}")
            return None
        if found is None:
            return await self._create(file_id, row.endpoint, row.model, cids, since)
        self.state.batch_status(file_id, found.status, batch_id=found.id)
        return Tracked(file_id, found.id, row.endpoint, row.model, cids, found)

    # --- polling and collecting -----------------------------------------------------------------
    async def _cancel(self, tracked: Tracked) -> None:
        """Cancel a batch of a run the user cancelled (once; one that ended meanwhile stays)."""
        tracked.cancelled = True
        with contextlib.suppress(ModelCallError):  # 409: it finished meanwhile
            self._update(tracked, await self.transport.cancel(tracked.batch_id))

    async def _poll(self, live: list[Tracked]) -> None:
        """Poll until every batch is collected. A batch refused for the enqueued-token limit
        is held back and created again (on the same file, the same custom_ids: no attempt
        is used) once the others are done, a bounded number of times."""
        delay = self.settings.poll_initial
        held: list[Tracked] = []
        while live or held:
            if not live:  # the rest of the wave is done: its tokens left the queue
                live = [t for t in held if await self._create_again(t)]
                held, delay = [], self.settings.poll_initial
                continue
            pending = [t for t in live if not t.cancelled]
            if pending and self.state.cancel_requested(self.run_id):
                await asyncio.gather(*(self._cancel(t) for t in pending))
            snapshots = await asyncio.gather(
                *(self.transport.retrieve(t.batch_id) for t in live), return_exceptions=True
            )
            waiting: list[Tracked] = []
            for tracked, snapshot in zip(live, snapshots, strict=True):
                if isinstance(snapshot, ModelCallError):
                    tracked.poll_errors += 1
                    if snapshot.retryable and tracked.poll_errors < self.settings.max_poll_errors:
                        waiting.append(tracked)
                    else:
                        message = f"polling batch {tracked.batch_id} failed: {snapshot}"
                        self._give_up(tracked.custom_ids, message)
                    continue
                if isinstance(snapshot, BaseException):
                    raise snapshot
                tracked.poll_errors = 0
                self._update(tracked, snapshot)
                if self._over_token_limit(tracked, snapshot):
                    held.append(tracked)
                elif snapshot.status in TERMINAL:
                    await self._collect(tracked, snapshot)
                else:
                    waiting.append(tracked)
            self._report()
            live = waiting
            if live:
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, self.settings.poll_max)

    def _over_token_limit(self, tracked: Tracked, snapshot: BatchSnapshot) -> bool:
        """The batch failed only because the enqueued-token limit was reached (nothing ran),
        and may be created again."""
        return (
            snapshot.status == "failed"
            and any(e.startswith(f"{TOKEN_LIMIT}:") for e in snapshot.errors)
            and tracked.holds < self.settings.token_limit_holds
            and not tracked.cancelled
            and not self.state.cancel_requested(self.run_id)
        )

    async def _create_again(self, tracked: Tracked) -> bool:
        """Create a held batch again on its file, after a wait that grows with each hold."""
        tracked.holds += 1
        tracked.earlier.add(tracked.batch_id)
        await asyncio.sleep(self.settings.poll_max * tracked.holds)
        fresh = await self._create(
            tracked.file_id,
            tracked.endpoint,
            tracked.model,
            tracked.custom_ids,
            exclude=frozenset(tracked.earlier),
        )
        if fresh is None:  # refused or lost: _create has settled its requests
            return False
        tracked.batch_id, tracked.cancelled = fresh.batch_id, fresh.cancelled
        tracked.poll_errors = 0
        self._update(tracked, fresh.snapshot)  # type: ignore[arg-type]
        return True

    def _update(self, tracked: Tracked, snapshot: BatchSnapshot) -> None:
        old = tracked.snapshot
        tracked.snapshot = snapshot
        if old is None or (old.status, old.completed, old.failed) != (
            snapshot.status,
            snapshot.completed,
            snapshot.failed,
        ):
            self.state.batch_status(
                tracked.file_id,
                snapshot.status,
                completed=snapshot.completed,
                failed=snapshot.failed,
                error="; ".join(snapshot.errors) or None,
            )

    async def _collect(self, tracked: Tracked, snapshot: BatchSnapshot) -> None:
        """Download the output and error files (streamed to a temporary file); parse, store
        and hand out the results a chunk at a time, so neither a file nor its parsed bodies
        are ever all in memory."""
        wanted = set(tracked.custom_ids)
        seen: set[str] = set()
        cancelled = self.state.cancel_requested(self.run_id)
        for file_id in (snapshot.output_file_id, snapshot.error_file_id):
            if not file_id:
                continue
            with tempfile.TemporaryFile() as f:
                try:
                    await self.transport.download(file_id, f)
                except ModelCallError as exc:
                    missing = [cid for cid in tracked.custom_ids if cid not in seen]
                    self._give_up(
                        missing, f"downloading the results of batch {snapshot.id} failed: {exc}"
                    )
                    return
                f.seek(0)
                for raws in read_chunks(f):
                    started = time.perf_counter()
                    chunk: list[tuple[str, str, Outcome]] = []
                    for raw in raws:
                        with contextlib.suppress(ValueError, AttributeError, TypeError):
                            cid, outcome = parse_result_line(raw)
                            if cid in wanted and cid not in seen:
                                seen.add(cid)
                                chunk.append((cid, raw.decode("utf-8").rstrip("\n"), outcome))
                    self.local_seconds += time.perf_counter() - started
                    self._deliver(tracked.file_id, chunk, cancelled)
        reason = f"batch {snapshot.id} ended {snapshot.status}"
        if snapshot.errors:
            reason += ": " + "; ".join(snapshot.errors[:3])
        self._finish_file(tracked.file_id, tracked.custom_ids, seen, reason, None, cancelled)

    def _finish_file(
        self,
        file_id: str,
        cids: list[str],
        seen: set[str],
        reason: str,
        status: int | None,
        cancelled: bool = False,
    ) -> None:
        """Give every request of the file without a result line a failure (``reason``), and mark
        the file collected: all its results are in the store."""
        chunk = []
        for cid in cids:
            if cid not in seen:
                raw = synthetic_line(cid, reason, status)
                chunk.append((cid, raw, parse_result_line(raw)[1]))
        self._deliver(file_id, chunk, cancelled)
        self.state.file_collected(file_id)

    def _deliver(
        self, file_id: str, chunk: list[tuple[str, str, Outcome]], cancelled: bool
    ) -> None:
        """Store results, then hand them to the records waiting for them. Once the user
        cancelled the run, failures are not retried."""
        if not chunk:
            return
        started = time.perf_counter()
        self.state.results_stored(self.run_id, [(cid, raw) for cid, raw, _ in chunk])
        for cid, _, outcome in chunk:
            if cid in self.known:
                self.known[cid] = (file_id, True)
            if cid in self.waiting:
                if cancelled and not outcome.ok:
                    outcome.retryable = False
                    outcome.error = f"{outcome.error} (the run was cancelled)"
                self._resolve(cid, outcome)
        self.local_seconds += time.perf_counter() - started

    def _give_up(self, cids: list[str], message: str) -> None:
        """Fail these requests in this process without storing anything: their batch may still
        answer, and a resumed run will wait for it again."""
        outcome = Outcome(False, error=f"{message}; resume the run to collect it", retryable=False)
        for cid in cids:
            self._resolve(cid, outcome)

    def _resolve(self, cid: str, outcome: Outcome) -> None:
        future = self.waiting.pop(cid, None)
        if future is not None and not future.done():
            future.set_result(outcome)

    # --- progress ---------------------------------------------------------------------------
    def _report(self) -> None:
        if self.on_status is not None and self._current is not None:
            self.on_status(self._current)

    def fail_all(self, message: str) -> None:
        """Resolve every waiting request with a failure (the run is stopping)."""
        for cid in list(self.waiting):
            self._resolve(cid, Outcome(False, error=message, retryable=False))


def read_chunks(f: BinaryIO) -> Iterator[list[bytes]]:
    """The lines of a downloaded file, at most ``COLLECT_CHUNK`` lines or about
    ``COLLECT_BYTES`` bytes at a time."""
    chunk: list[bytes] = []
    size = 0
    for raw in f:
        chunk.append(raw)
        size += len(raw)
        if len(chunk) >= COLLECT_CHUNK or size >= COLLECT_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


def synthetic_line(cid: str, message: str, status: int | None) -> str:
    """A result line for a request the batch gave no line for (kept in the same format)."""
    if status is not None and status != 200:
        body = {"error": {"message": message}}
        response = {"status_code": status, "request_id": None, "body": body}
        return json.dumps({"custom_id": cid, "response": response, "error": None})
    return json.dumps(
        {"custom_id": cid, "response": None, "error": {"code": "batch_failed", "message": message}}
    )


class WaveClient:
    """The model client of a Batch API run (same interface as ``flowrun.client.ModelClient``):
    it parks each request with the coordinator, under the record's and step's custom_id."""

    def __init__(
        self, coordinator: WaveCoordinator, record_index: Callable[[], int | None]
    ) -> None:
        self.coordinator = coordinator
        self.record_index = record_index

    async def chat(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
        on_text: Callable[[str], None] | None = None,
    ) -> ChatReply:
        outcome, attempt = await self._call(CHAT, batch_body(request), 1, max_retries)
        if not isinstance(outcome.reply, ChatReply):
            raise ModelCallError("the batch answered a chat request with something else")
        outcome.reply.retries = attempt
        return outcome.reply

    async def embed(
        self,
        request: dict[str, Any],
        *,
        timeout_s: float | None = None,
        max_retries: int | None = None,
    ) -> EmbedReply:
        body = batch_body(request)
        inputs = len(body["input"]) if isinstance(body.get("input"), list) else 1
        outcome, attempt = await self._call(EMBEDDINGS, body, inputs, max_retries)
        if not isinstance(outcome.reply, EmbedReply):
            raise ModelCallError("the batch answered an embeddings request with something else")
        outcome.reply.model = outcome.reply.model or body["model"]
        outcome.reply.retries = attempt
        return outcome.reply

    async def _call(
        self, url: str, body: dict[str, Any], inputs: int, max_retries: int | None
    ) -> tuple[Outcome, int]:
        index = self.record_index()
        label = CURRENT_LABEL.get()
        body_json = encode_body(body)
        digest = body_digest(body_json)
        tries = 1 + (DEFAULT_RETRIES if max_retries is None else max_retries)
        attempt = made = 0
        while True:
            cid = custom_id(index or 0, label, digest, attempt)
            line = encode_line(cid, url, body_json)
            outcome = await self.coordinator.request(cid, url, body["model"], line, inputs)
            attempt += 1
            if outcome.stale:
                continue
            made += 1
            if outcome.ok:
                return outcome, made - 1
            if not outcome.retryable or made >= tries:
                break
        attempts = f" (after {made} attempts)" if made > 1 else ""
        raise ModelCallError(f"{outcome.error}{attempts}", retryable=outcome.retryable)

    async def aclose(self) -> None:
        return None
