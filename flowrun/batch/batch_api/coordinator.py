"""Park every record's model requests, submit them in batches as soon as nothing can move,
follow each batch on its own, and hand its results back the moment it is collected.

Records run as ordinary executors whose model client (``WaveClient``) does not call the
API: it parks the request under a deterministic ``custom_id`` and awaits a future. When no
record can move (every live record waits on a parked request, or has finished; no tool is
running, no batch is being collected), the coordinator submits a *round* (numbered like the
waves of earlier versions): the parked requests grouped by endpoint and model, split into
files within the API's limits and the enqueued-token limit, uploaded and batched
(``completion_window: 24h``). Each batch is then followed alone (polled with backoff,
downloaded, matched by ``custom_id``): batches overlap, and a record's next step is
submitted in the next round after its own batch is collected, whatever other batches are
still running. So a run takes as many sequential turnarounds as its DAG is deep.

A failed request (error file, expired or cancelled batch) is asked for again with the next
attempt's ``custom_id`` in a later round, up to ``max_retries``; then its step fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import defaultdict
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

from flowrun.batch.batch_api.lines import Outcome, Pending, file_tokens, pack, parse_result_line
from flowrun.batch.batch_api.settings import TokenQueue, WaveBudget, WaveSettings
from flowrun.batch.batch_api.tracking import BatchTracking, Tracked, WaveStatus
from flowrun.batch.batch_api.transport import BatchTransport
from flowrun.store.batch_api_state import BatchState

__all__ = ["Tracked", "WaveBudget", "WaveCoordinator", "WaveSettings", "WaveStatus"]


class WaveCoordinator(BatchTracking):
    """Parks requests, submits and follows batches, resolves each request's ``Outcome``."""

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
        self.following: set[str] = set()  # files whose batch this process follows
        self.waiting: dict[str, asyncio.Future[Outcome]] = {}
        # suspended records: their futures, their requests, the answers they will ask for again
        self.sleepers: dict[int, list[asyncio.Future[Outcome]]] = defaultdict(list)
        self.asleep: set[str] = set()
        self.answers: dict[str, Outcome] = {}
        self._woken: list[tuple[int, int, asyncio.Future[None]]] = []  # (record, _, its gate)
        self.live: dict[str, Tracked] = {}  # file_id -> its batch, in flight
        self.queue = TokenQueue(self.settings.queue_tokens)
        self.busy = 0
        self.local_seconds = 0.0  # time spent in this module's own work (not the API's)
        self.broken: BaseException | None = None
        self.status = WaveStatus(self.wave)
        self._files = 0  # files this process made (for their names)
        self._tasks: set[asyncio.Task[None]] = set()
        self._not_busy = asyncio.Event()
        self._not_busy.set()
        self._wake = asyncio.Event()
        self._activity = 0
        state.clear_cancel(run_id)  # running (or resuming) the run again lifts a cancel

    # --- parking (called by WaveClient) ------------------------------------------------
    def request(
        self, cid: str, endpoint: str, model: str, line: bytes, inputs: int
    ) -> asyncio.Future[Outcome]:
        """The future of one request: from the store, an earlier batch, or the next round."""
        if cid in self.waiting:  # the same request of the same record and step: ask once
            return self.waiting[cid]
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        answer = self.answers.pop(cid, None)
        if answer is not None:  # collected while its record was suspended
            future.set_result(answer)
            return future
        if self.broken is not None:
            future.set_result(Outcome(False, error=f"the batch loop failed: {self.broken!r}"))
            return future
        known = self.known.get(cid)
        if known is not None and known[1]:
            outcome = parse_result_line(self.state.result(self.run_id, cid) or "{}")[1]
            # an earlier process's failure: ask again, under the next attempt's id
            outcome.stale = not outcome.ok
            future.set_result(outcome)
            return future
        if known is not None:
            if known[0] not in self.following:  # else: delivered when its batch is collected
                self.attached[known[0]].append(cid)
        else:
            self.parked[(endpoint, model)].append(Pending(cid, line, inputs))
        self.waiting[cid] = future
        self._activity += 1
        self._wake.set()
        return future

    def sleep(self, index: int, cid: str, future: asyncio.Future[Outcome]) -> None:
        """Record ``index`` is suspended until ``future`` (among others) is answered."""
        self.asleep.add(cid)
        self.sleepers[index].append(future)

    async def wait_record(self, index: int) -> None:
        """Until one of the requests record ``index`` was suspended for is answered (and the
        batch it came in is collected whole, so the record runs again once, not per chunk)."""
        futures = self.sleepers.pop(index, [])
        if futures:
            await asyncio.wait(futures, return_when=asyncio.FIRST_COMPLETED)
        if self.busy:  # woken in input order when it is over: results come out in order
            gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            heapq.heappush(self._woken, (index, id(gate), gate))
            await gate

    @contextlib.contextmanager
    def busy_span(self) -> Iterator[None]:
        """Marks work the event loop cannot see (tools in threads, async tools' I/O, a batch
        being collected), so no round is submitted with only part of what it will bring."""
        self.busy += 1
        self._not_busy.clear()
        try:
            yield
        finally:
            self.busy -= 1
            self._activity += 1
            if not self.busy:
                self._not_busy.set()
                while self._woken:
                    gate = heapq.heappop(self._woken)[2]
                    if not gate.done():
                        gate.set_result(None)

    # --- the submission loop -----------------------------------------------------------------
    async def run(self) -> None:
        """Submit rounds until cancelled (the runner cancels it when every record is done).

        An unexpected error (here or in a batch's follower) fails every waiting request (so
        no record waits forever), then propagates.
        """
        try:
            while True:
                await self._until_quiet()
                if self.broken is not None:
                    raise self.broken
                self._submit_round()
        except Exception as exc:
            if self.broken is None:
                self.broken = exc
                self.fail_all(f"the batch loop failed: {exc!r}")
            raise
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _until_quiet(self) -> None:
        """Return when requests wait and nothing else can move."""
        loop = asyncio.get_running_loop()
        quiet_rounds = 0
        while True:
            if self.broken is not None:
                return
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

    def _submit_round(self) -> None:
        """Submit every parked request (one task per file) and re-attach to earlier batches."""
        started = time.perf_counter()
        groups, self.parked = self.parked, defaultdict(list)
        attached, self.attached = self.attached, defaultdict(list)
        count = sum(len(items) for items in groups.values())
        if groups:
            self.wave += 1
            self.status.wave = self.wave
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
        for file_id in attached:
            self.following.add(file_id)
            self._spawn(self._reattach_and_follow(file_id))
        for (endpoint, model), items in groups.items():
            for chunk in pack(items, self.settings.limits, self.queue.limit(model)):
                self._files += 1
                self._spawn(self._submit_and_follow(endpoint, model, chunk, self.wave, self._files))
        if groups:
            self._report(f"submitting {count:,} requests")
        self.local_seconds += time.perf_counter() - started

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(job)
        self._tasks.add(task)
        task.add_done_callback(self._ended)

    def _ended(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        if isinstance(task.exception(), (KeyboardInterrupt, SystemExit)):
            # a stop (SIGTERM raises KeyboardInterrupt wherever it lands), not a bug: the
            # waiting requests are pending for the resume, not failed
            return
        if self.broken is None:  # a bug: stop the run rather than leave records waiting
            self.broken = task.exception()
            self.fail_all(f"the batch loop failed: {self.broken!r}")
        self._wake.set()

    async def _submit_and_follow(
        self, endpoint: str, model: str, items: list[Pending], wave: int, n: int
    ) -> None:
        tokens = file_tokens(items)
        await self.queue.enter(model, tokens)  # wait for room under the enqueued-token limit
        try:
            if self.state.cancel_requested(self.run_id):  # cancelled while it waited
                message = "the run was cancelled (flowrun batches cancel); resume it to go on"
                self._refuse({(endpoint, model): items}, message)
                return
            tracked = await self._submit(endpoint, model, items, wave, n)
            if tracked is not None:
                tracked.tokens = tokens
                await self._follow(tracked)
        finally:
            self.queue.leave(model, tokens)

    async def _reattach_and_follow(self, file_id: str) -> None:
        row = self.state.file(file_id)
        tokens = row.bytes // 4 + 1 if row is not None else 0
        model = row.model if row is not None else ""
        self.queue.queued[model] = self.queue.queued.get(model, 0) + tokens  # already queued
        try:
            tracked = await self._reattach(file_id)
            if tracked is not None:
                tracked.tokens = tokens
                await self._follow(tracked)
        finally:
            self.queue.leave(model, tokens)
            self.following.discard(file_id)

    def _refuse(self, groups: dict[tuple[str, str], list[Pending]], message: str) -> None:
        outcome = Outcome(False, error=message, retryable=False)
        for items in groups.values():
            for item in items:
                self._resolve(item.custom_id, outcome)
