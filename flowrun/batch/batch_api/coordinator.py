"""Waves: park every record's model requests, submit them together, hand the results back.

Records run as ordinary executors whose model client (``WaveClient``) does not call the
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
import time
from collections import defaultdict
from collections.abc import Callable, Iterator

from flowrun.batch.batch_api.lines import Outcome, Pending, pack, parse_result_line
from flowrun.batch.batch_api.settings import WaveBudget, WaveSettings
from flowrun.batch.batch_api.tracking import BatchTracking, Tracked, WaveStatus
from flowrun.batch.batch_api.transport import BatchTransport
from flowrun.store.batch_api_state import BatchState

__all__ = ["Tracked", "WaveBudget", "WaveCoordinator", "WaveSettings", "WaveStatus"]


class WaveCoordinator(BatchTracking):
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

    # --- parking (called by WaveClient) ------------------------------------------------
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
