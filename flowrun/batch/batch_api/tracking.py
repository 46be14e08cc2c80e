"""Following submitted batches: create each exactly once, poll, collect, hand out results.

``BatchTracking`` is the part of ``WaveCoordinator`` that talks to the Batch API about one
file at a time: it creates its batch (looking for a batch before creating again, so one
file never gets two), re-attaches to a batch an earlier process submitted, polls it with
backoff, cancels it when the run is cancelled, holds it back when it was refused for the
enqueued-token limit and creates it again, and streams its output and error files into the
store and to the waiting requests, a chunk at a time. Every batch is followed by its own
task, so batches overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import BinaryIO

from flowrun.batch.batch_api.lines import Outcome, parse_result_line
from flowrun.batch.batch_api.settings import TokenQueue, WaveSettings
from flowrun.batch.batch_api.transport import BatchSnapshot, BatchTransport
from flowrun.provider.client import ModelCallError
from flowrun.store.batch_api_state import TERMINAL, BatchState

CREATE_ATTEMPTS = 4  # a batch create that fails retryably is looked for, then tried again
TOKEN_LIMIT = "token_limit_exceeded"  # the error of a batch refused for the enqueued tokens
#: result lines parsed, stored (one transaction) and handed out together. A file's lines come
#: in no order, so a chunk's keys land all over the results table's index, and each commit
#: writes every index page it touched to SQLite's log: 5,000 lines a chunk instead of 2,000
#: cut the writes per record by a tenth.
COLLECT_CHUNK = 5_000
COLLECT_BYTES = 4 << 20  # ... or fewer, when they are this many bytes
CUSTOM_ID = re.compile(rb'"custom_id"\s*:\s*"([^"\\]*)"')  # a result line's first one


@dataclass
class Tracked:
    """A submitted file and its batch, followed until its results are stored."""

    file_id: str
    batch_id: str
    endpoint: str
    model: str
    custom_ids: list[str]
    snapshot: BatchSnapshot | None = None
    wave: int = 0
    tokens: int = 0  # estimated input tokens (the enqueued-token limit)
    started: float = field(default_factory=time.monotonic)  # when this process began following
    poll_errors: int = 0
    cancelled: bool = False  # this process asked the API to cancel it
    holds: int = 0  # times it was created again after the enqueued-token limit refused it
    earlier: set[str] = field(default_factory=set)  # those refused batches' ids


@dataclass
class WaveStatus:
    """What the progress display shows: the batches in flight and what just happened."""

    wave: int  # rounds submitted so far
    batches: list[Tracked] = field(default_factory=list)  # in flight
    event: str = ""  # what just happened ("" when only the counts changed)
    collected: int = 0  # batches collected so far
    records_done: int = 0

    @property
    def requests(self) -> int:
        return sum(len(t.custom_ids) for t in self.batches)

    def estimate(self, now: float) -> float | None:
        """Seconds until the batches in flight are done, from their own progress counts (the
        slowest one's rate so far); None before any of them has made progress."""
        worst: float | None = None
        for tracked in self.batches:
            snap = tracked.snapshot
            if snap is None or not snap.total:
                continue
            done = snap.completed + snap.failed
            elapsed = now - tracked.started
            if done <= 0 or elapsed <= 0:
                return None
            left = (snap.total - done) * elapsed / done
            worst = left if worst is None else max(worst, left)
        return worst


class BatchTracking:
    """Submitting, polling and collecting (mixed into ``WaveCoordinator``, which sets these)."""

    transport: BatchTransport
    state: BatchState
    run_id: str
    settings: WaveSettings
    waiting: dict[str, asyncio.Future[Outcome]]
    answers: dict[str, Outcome]
    parked_ids: set[str]
    uploads: int
    following: set[str]
    collected_here: set[str]
    cancelled_files: set[str]
    live: dict[str, Tracked]
    queue: TokenQueue
    local_seconds: float
    on_status: Callable[[WaveStatus], None] | None
    on_runnable: Callable[[], None] | None
    status: WaveStatus

    def busy_span(self) -> AbstractContextManager[None]:
        raise NotImplementedError

    def mark_runnable(self, cids: Iterable[str]) -> None:
        raise NotImplementedError

    # --- submitting ------------------------------------------------------------------------
    async def _submit(
        self, endpoint: str, model: str, sent: list[bytes], cids: list[str], wave: int, n: int
    ) -> Tracked | None:
        """Upload a file (``sent`` holds its bytes, dropped once uploaded) and create its batch."""
        name = f"flowrun-{self.run_id}-w{wave}-{n}.jsonl"
        size = len(sent[0])
        try:
            file_id = await self.transport.upload(name, sent.pop())
        except ModelCallError as exc:
            self.parked_ids.difference_update(cids)
            for cid in cids:  # nothing was submitted: the next attempt goes in the next wave
                self._resolve(
                    cid, Outcome(False, error=f"upload failed: {exc}", retryable=exc.retryable)
                )
            return None
        except BaseException:
            self.parked_ids.difference_update(cids)
            raise
        self.state.file_uploaded(self.run_id, wave, file_id, endpoint, model, cids, size)
        self.following.add(file_id)
        self.parked_ids.difference_update(cids)  # (in the store now)
        self.uploads += 1
        return await self._create(file_id, endpoint, model, cids, wave)

    async def _create(
        self,
        file_id: str,
        endpoint: str,
        model: str,
        cids: list[str],
        wave: int,
        since: float | None = None,
        exclude: frozenset[str] = frozenset(),
    ) -> Tracked | None:
        """Create the batch of an uploaded file, exactly once.

        A create that timed out or failed with 5xx may still have created the batch, so
        before trying again flowrun looks for a batch on this file; a retried create never
        makes a second batch.
        """
        metadata = {"flowrun_run_id": self.run_id, "flowrun_wave": str(wave)}
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
        tracked = Tracked(file_id, snapshot.id, endpoint, model, cids, snapshot, wave)
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
            return Tracked(file_id, row.batch_id, row.endpoint, row.model, cids, wave=row.wave)
        since = row.submitted_ts - 600
        try:
            found = (await self.transport.find({file_id}, since)).get(file_id)
        except ModelCallError as exc:
            self._give_up(cids, f"listing batches failed: {exc}")
            return None
        if found is None:
            return await self._create(file_id, row.endpoint, row.model, cids, row.wave, since)
        self.state.batch_status(file_id, found.status, batch_id=found.id)
        return Tracked(file_id, found.id, row.endpoint, row.model, cids, found, row.wave)

    # --- polling and collecting -----------------------------------------------------------------
    async def _cancel(self, tracked: Tracked) -> None:
        """Cancel a batch of a run the user cancelled (once; one that ended meanwhile stays)."""
        tracked.cancelled = True
        with contextlib.suppress(ModelCallError):  # 409: it finished meanwhile
            self._update(tracked, await self.transport.cancel(tracked.batch_id))

    async def _follow(self, tracked: Tracked) -> None:
        """Poll one batch until it is collected. One refused for the enqueued-token limit is
        held back and created again (on the same file, the same custom_ids: no attempt is
        used) once there is room, a bounded number of times."""
        self.live[tracked.file_id] = tracked
        self.status.batches = list(self.live.values())
        self._report(f"{tracked.batch_id} created ({len(tracked.custom_ids):,} requests)")
        delay = self.settings.poll_initial
        collected = False
        try:
            while True:
                if not tracked.cancelled and self.state.cancel_requested(self.run_id):
                    await self._cancel(tracked)
                try:
                    snapshot = await self.transport.retrieve(tracked.batch_id)
                except ModelCallError as exc:
                    tracked.poll_errors += 1
                    if not exc.retryable or tracked.poll_errors >= self.settings.max_poll_errors:
                        message = f"polling batch {tracked.batch_id} failed: {exc}"
                        self._give_up(tracked.custom_ids, message)
                        return
                else:
                    tracked.poll_errors = 0
                    self._update(tracked, snapshot)
                    if self._over_token_limit(tracked, snapshot):
                        if not await self._hold(tracked):
                            return
                        delay = self.settings.poll_initial
                        continue
                    if snapshot.status in TERMINAL:
                        with self.busy_span():  # no round goes out with half its results
                            await self._collect(tracked, snapshot)
                        self.status.collected += 1
                        collected = True
                        return
                    self._report()
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, self.settings.poll_max)
        finally:
            self.live.pop(tracked.file_id, None)
            self.status.batches = list(self.live.values())
            snap = tracked.snapshot
            if snap is None:
                counts = "unknown"
            else:
                counts = f"{snap.status} · {snap.completed + snap.failed:,}/{snap.total:,} requests"
            done = "collected" if collected else "left (resume the run to collect it)"
            self._report(f"{tracked.batch_id} {counts} · {done}")

    async def _hold(self, tracked: Tracked) -> bool:
        """The batch was refused for the enqueued-token limit: lower the limit, wait until
        the model's other batches leave room (and the longest poll interval, times the holds
        so far), then create it again. Whether it was."""
        self.queue.refused(tracked.model)
        self.queue.leave(tracked.model, tracked.tokens)
        self.live.pop(tracked.file_id, None)
        self.status.batches = list(self.live.values())
        self._report(f"{tracked.batch_id} held: the enqueued-token limit was reached")
        await self.queue.enter(tracked.model, tracked.tokens)
        await asyncio.sleep(self.settings.poll_max * (1 + tracked.holds))
        if not await self._create_again(tracked):
            return False
        self.live[tracked.file_id] = tracked
        self.status.batches = list(self.live.values())
        return True

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
        """Create a held batch again on its file (the same requests: no attempt is used)."""
        tracked.holds += 1
        tracked.earlier.add(tracked.batch_id)
        fresh = await self._create(
            tracked.file_id,
            tracked.endpoint,
            tracked.model,
            tracked.custom_ids,
            tracked.wave,
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
        self.collected_here.add(tracked.file_id)
        if cancelled:
            self.cancelled_files.add(tracked.file_id)
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
                    chunk: list[tuple[str, str, Outcome | None]] = []
                    for raw in raws:
                        try:  # (not contextlib.suppress: three calls a line)
                            cid, outcome = self._read_line(raw)
                            if cid in wanted and cid not in seen:
                                seen.add(cid)
                                chunk.append((cid, raw.decode("utf-8").rstrip("\n"), outcome))
                        except (ValueError, AttributeError, TypeError):
                            pass
                    self.local_seconds += time.perf_counter() - started
                    self._deliver(tracked.file_id, chunk, cancelled)
        reason = f"batch {snapshot.id} ended {snapshot.status}"
        if snapshot.errors:
            reason += ": " + "; ".join(snapshot.errors[:3])
        self._finish_file(tracked.file_id, tracked.custom_ids, seen, reason, None, cancelled)

    def _read_line(self, raw: bytes) -> tuple[str, Outcome | None]:
        """A result line's custom_id, and its outcome if a request awaits it in memory. A
        suspended record's line is only stored here and parsed when the record runs again
        (``WaveCoordinator._stored``): its custom_id is taken with a pattern."""
        found = CUSTOM_ID.search(raw)
        if found is not None:
            cid = found.group(1).decode("utf-8")
            if cid not in self.waiting:
                return cid, None
        return parse_result_line(raw)

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
        self.mark_runnable(cids)  # every result of the file is stored: its records go on

    def _deliver(
        self, file_id: str, chunk: list[tuple[str, str, Outcome | None]], cancelled: bool
    ) -> None:
        """Store results, then hand them to the records waiting for them. Once the user
        cancelled the run, failures are not retried."""
        if not chunk:
            return
        started = time.perf_counter()
        self.state.results_stored(self.run_id, [(cid, raw) for cid, raw, _ in chunk])
        for cid, _, outcome in chunk:  # (suspended records read theirs from the store)
            if outcome is not None and cid in self.waiting:
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
        """Hand an outcome to the request's waiter in memory, or keep it for its suspended
        record (an outcome that is not stored: a refusal, a give-up)."""
        future = self.waiting.pop(cid, None)
        if future is None:
            self.answers[cid] = outcome
            self.mark_runnable((cid,))
        elif not future.done():
            future.set_result(outcome)

    def _report(self, event: str = "") -> None:
        if self.on_status is not None:
            self.status.event = event
            self.on_status(self.status)

    def fail_all(self, message: str) -> None:
        """Resolve every waiting request with a failure (the run is stopping)."""
        for cid in list(self.waiting):
            self._resolve(cid, Outcome(False, error=message, retryable=False))
        if self.on_runnable is not None:  # suspended records run again, and fail
            self.on_runnable()


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
