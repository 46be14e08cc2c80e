"""Park every record's model requests, submit them in batches as soon as nothing can move,
follow each batch on its own, and hand its results back the moment it is collected.

Records run as ordinary executors whose model client (``WaveClient``) does not call the
API: it parks the request under a deterministic ``custom_id`` and the record is suspended
(``ask``; a step's later requests await a future instead: ``request``). Parked requests are
grouped by endpoint and model; without a budget, a group that fills a file (the API's
limits, the enqueued-token limit, ``EAGER_BYTES``) is uploaded and batched at once. When no
record can move (every running record waits, or has finished; no tool is running, no batch
is being collected), the coordinator submits the rest as a *round* (numbered like the waves
of earlier versions), split into files the same way (``completion_window: 24h``). Each batch
is then followed alone (polled with backoff, downloaded, matched by ``custom_id``, stored):
batches overlap, and once a batch's results are stored its records are marked runnable
(``take_runnable``), run again, and submit their next steps in the next round, whatever
other batches are still running. So a run takes as many sequential turnarounds as its DAG
is deep.

A failed request (error file, expired or cancelled batch) is asked for again with the next
attempt's ``custom_id`` in a later round, up to ``max_retries``; then its step fails alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Coroutine, Iterable, Iterator
from typing import Any

from flowrun.batch.batch_api.lines import (
    Outcome,
    Pending,
    encode_line,
    file_bytes,
    file_tokens,
    pack,
    parse_result_line,
)
from flowrun.batch.batch_api.settings import TokenQueue, WaveBudget, WaveSettings
from flowrun.batch.batch_api.tracking import BatchTracking, Tracked, WaveStatus
from flowrun.batch.batch_api.transport import BatchTransport
from flowrun.store.batch_api_state import BatchState, record_of

#: Bytes of one group's parked requests held in memory: a group this big goes out as a
#: file at once (the API allows 200 MB; a file is also held once more while uploaded).
EAGER_BYTES = 32 * 1024 * 1024

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
        # whether an earlier process of this run left requests in the store (a resume)
        self.resuming = state.has_requests(run_id)
        self.wave = max((f.wave for f in state.files(run_id, limit=1)), default=0)
        self.parked: dict[tuple[str, str], list[Pending]] = defaultdict(list)
        self.parked_ids: set[str] = set()  # parked, not yet in an uploaded file
        # per group: its requests, bytes, embedding inputs, tokens
        self._sizes: dict[tuple[str, str], list[int]] = {}
        self._forming = False  # a round is being formed (some of it may have gone out already)
        self.attached: dict[str, list[str]] = defaultdict(list)  # file_id -> custom_ids
        self.following: set[str] = set()  # files this process follows (or followed)
        self.collected_here: set[str] = set()  # files this process collected
        self.cancelled_files: set[str] = set()  # ... after the user cancelled the run
        # requests of the records being run: record -> custom_id -> (file_id, result line)
        self.rows: dict[int, dict[str, tuple[str, str | None]]] = {}
        self._read_at: dict[int, int] = {}  # record -> ``uploads`` when its rows were read
        self.uploads = 0  # files uploaded (their requests moved from memory to the store)
        self.waiting: dict[str, asyncio.Future[Outcome]] = {}  # requests awaited in memory
        self.answers: dict[str, Outcome] = {}  # outcomes not in the store (refusals, give-ups)
        self.runnable: list[int] = []  # (heap) suspended records an answer came for
        self._runnable: set[int] = set()
        self.on_runnable: Callable[[], None] | None = None
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

    # --- records and their requests (called by the runner and WaveClient) ----------------
    def prefetch(self, indices: list[int], completed: Collection[str] = ()) -> None:
        """Read the stored requests (and results) of records about to run, in one go; not
        those of the ``completed`` steps, which each of these records has (and does not run
        again)."""
        self.rows.update(self.state.requests_of(self.run_id, indices, completed))
        self._read_at.update(dict.fromkeys(indices, self.uploads))

    def release(self, index: int) -> None:
        """Record ``index`` stopped running (suspended or finished)."""
        self.rows.pop(index, None)
        self._read_at.pop(index, None)

    def _row(self, index: int, cid: str) -> tuple[str, str | None] | None:
        """The stored row of request ``cid`` of record ``index``, read before the record
        started (read again if a file was uploaded since: its request may have gone out
        meanwhile)."""
        read_at = self._read_at.get(index)
        if read_at is not None and read_at != self.uploads:
            self.prefetch([index])
        rows = self.rows.get(index)
        return rows.get(cid) if rows is not None else None

    def ask(
        self, cid: str, index: int, endpoint: str, model: str, body_json: str, inputs: int
    ) -> Outcome | None:
        """The answer to request ``cid`` of record ``index``, whose record may be suspended,
        or None: the request is parked (or in a batch in flight) and the record runs again
        when its batch is collected. Nothing of the record stays in memory meanwhile."""
        outcome = self._given(cid)
        if outcome is None:
            row = self._row(index, cid)  # (read once: the answer, else where it went)
            outcome = self._stored(row)
            if outcome is None and self._unplaced(cid, row):
                line = encode_line(cid, endpoint, body_json)
                self._park(endpoint, model, Pending(cid, line, inputs))
        return outcome

    def request(
        self, cid: str, endpoint: str, model: str, line: bytes, inputs: int
    ) -> asyncio.Future[Outcome]:
        """The future of one request awaited in memory (a step's later requests)."""
        if cid in self.waiting:  # the same request of the same record and step: ask once
            return self.waiting[cid]
        future: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        outcome = self._given(cid)
        row = None
        if outcome is None:
            row = self._row(record_of(cid), cid)
            outcome = self._stored(row)
        if outcome is not None:
            future.set_result(outcome)
            return future
        if self._unplaced(cid, row):
            self._park(endpoint, model, Pending(cid, line, inputs))
        self.waiting[cid] = future
        return future

    def _given(self, cid: str) -> Outcome | None:
        """The request's outcome if this process has it without the store: a refusal or a
        give-up, a failure of the loop, or an answer awaited in memory."""
        answer = self.answers.pop(cid, None)
        if answer is not None:
            return answer
        if self.broken is not None:
            return Outcome(False, error=f"the batch loop failed: {self.broken!r}")
        future = self.waiting.get(cid)
        if future is not None and future.done():
            return future.result()
        return None

    def _stored(self, row: tuple[str, str | None] | None) -> Outcome | None:
        """The outcome of a request's stored row (collected here or by an earlier process),
        or None while it has no result."""
        if row is None or row[1] is None:
            return None
        file_id, raw = row
        try:
            outcome = parse_result_line(raw)[1]
        except (ValueError, AttributeError, TypeError):  # stored unparsed: not an answer
            outcome = Outcome(False, error="the batch returned a result line that is not JSON")
            outcome.retryable = True
        if file_id not in self.collected_here:
            # an earlier process's failure: ask again, under the next attempt's id
            outcome.stale = not outcome.ok
        elif file_id in self.cancelled_files and not outcome.ok:
            outcome.retryable = False
            outcome.error = f"{outcome.error} (the run was cancelled)"
        return outcome

    def _unplaced(self, cid: str, row: tuple[str, str | None] | None) -> bool:
        """Whether a request without an outcome is to be parked: not parked or awaited
        already, nor in a file submitted earlier (whose batch is then followed: ``row``)."""
        if cid in self.parked_ids or cid in self.waiting:
            return False
        if row is not None:  # in a file submitted already
            if row[0] not in self.following:  # else: its record runs when it is collected
                self.attached[row[0]].append(cid)
                self._activity += 1
                self._wake.set()
            return False
        return True

    def _park(self, endpoint: str, model: str, item: Pending) -> None:
        """Add a request to the round being formed. Without a budget (which checks a round
        whole), a group that fills a file goes out at once, so the first round's files are
        created while later records are still being rendered and no group grows past a
        file in memory."""
        key = (endpoint, model)
        sizes = self._sizes.get(key) or self._sizes.setdefault(key, [0, 0, 0, 0])
        limits = self.settings.limits
        grows = len(item.line) + 1
        if (
            self.budget is None
            and sizes[0]
            and (
                sizes[0] >= limits.max_requests
                or sizes[1] + grows > min(limits.max_bytes, EAGER_BYTES)
                or sizes[2] + item.inputs > limits.max_embedding_inputs
                or sizes[3] + item.tokens > self.queue.limit(model)
            )
        ):
            self._send_group(key)
            sizes = self._sizes.setdefault(key, [0, 0, 0, 0])
        self.parked[key].append(item)
        self.parked_ids.add(item.custom_id)
        sizes[0] += 1
        sizes[1] += grows
        sizes[2] += item.inputs
        sizes[3] += item.tokens
        if not self._forming:
            self._forming = True
            self.status.wave = self.wave + 1
        self._activity += 1
        self._wake.set()

    def _send_group(self, key: tuple[str, str]) -> None:
        """Submit a full group of the round being formed as one file, now."""
        items = self.parked.pop(key, [])
        self._sizes.pop(key, None)
        if items:
            self._files += 1
            self._spawn(self._submit_and_follow(key[0], key[1], items, self.wave + 1, self._files))

    def mark_runnable(self, cids: Iterable[str]) -> None:
        """The records of these requests can run again (an answer of theirs is in)."""
        self.wake_records(map(record_of, cids))

    def wake_records(self, indices: Iterable[int]) -> None:
        added = False
        for index in indices:
            if index not in self._runnable:
                self._runnable.add(index)
                heapq.heappush(self.runnable, index)
                added = True
        if added and self.on_runnable is not None:
            self.on_runnable()

    def take_runnable(self, suspended: Collection[int], most: int) -> list[int]:
        """Up to ``most`` suspended records to run again, lowest index first. One whose answer
        came while it was still running stays, and runs once it is suspended."""
        if self.broken is not None:  # every suspended record runs again, and fails at once
            self.wake_records(list(suspended))
        picked: list[int] = []
        still: list[int] = []
        while self.runnable and len(picked) < most:
            index = heapq.heappop(self.runnable)
            if index not in self._runnable:  # finished meanwhile
                continue
            if index in suspended:
                self._runnable.discard(index)
                picked.append(index)
            else:
                still.append(index)
        for index in still:
            heapq.heappush(self.runnable, index)
        return picked

    def forget_runnable(self, index: int) -> None:
        """Record ``index`` is finished: drop a stale wake-up of it."""
        self._runnable.discard(index)

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

    # --- the submission loop -----------------------------------------------------------------
    async def run(self) -> None:
        """Submit rounds until cancelled (the runner cancels it when every record is done).

        An unexpected error (here or in a batch's follower) fails every waiting request (so
        no record waits forever), then propagates.
        """
        try:
            for file_id in self.state.open_files(self.run_id):  # a resume: every batch in flight
                self.following.add(file_id)
                self._spawn(self._reattach_and_follow(file_id))
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
            if not (self.parked or self.attached or self._forming):
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
        self._sizes = {}
        attached, self.attached = self.attached, defaultdict(list)
        count = sum(len(items) for items in groups.values())
        if self._forming:
            self._forming = False
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
        data, cids = file_bytes(items), [p.custom_id for p in items]
        items.clear()  # the lines are in ``data`` now (the list lives as long as this batch)
        await self.queue.enter(model, tokens)  # wait for room under the enqueued-token limit
        try:
            if self.state.cancel_requested(self.run_id):  # cancelled while it waited
                message = "the run was cancelled (flowrun batches cancel); resume it to go on"
                self._refuse_ids(cids, message)
                return
            sent = [data]
            del data
            tracked = await self._submit(endpoint, model, sent, cids, wave, n)
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

    def _refuse(self, groups: dict[tuple[str, str], list[Pending]], message: str) -> None:
        for items in groups.values():
            self._refuse_ids([item.custom_id for item in items], message)

    def _refuse_ids(self, cids: list[str], message: str) -> None:
        outcome = Outcome(False, error=message, retryable=False)
        self.parked_ids.difference_update(cids)
        for cid in cids:
            self._resolve(cid, outcome)
