"""Batch runs through the Batch API: the live batch runner, advanced in waves.

``WaveBatchRunner`` is ``flowrun.batch.runner.BatchRunner`` (records streamed from the file, results
in input order, completed steps kept for resume) with these changes: the model client parks
requests with a ``WaveCoordinator`` instead of calling the API, calls are priced at Batch
API rates, the budget is checked per wave, and a record waiting for a batch is *suspended*:
its task ends, its requests are parked (then in the run store with their file) and its
completed steps wait as bytes (``WaitingSteps``: their answers are in the run store, so they
are not state); only its checked inputs (pickled) and its place stay in memory. When a batch
is collected, its records run again a chunk (``CHUNK``) at a time, their stored answers read
in one go. Every record is still an ordinary ``Executor``, so tool steps, ``when``, ``foreach``, output
validation, tool-calling rounds and extract repairs behave exactly as in live runs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from flowrun.batch.batch_api.coordinator import (
    WaveBudget,
    WaveCoordinator,
    WaveSettings,
    WaveStatus,
)
from flowrun.batch.batch_api.held_results import HeldResults, OnDisk, pickled, unpickled
from flowrun.batch.batch_api.transport import BatchTransport
from flowrun.batch.batch_api.waiting_steps import WaitingSteps
from flowrun.batch.batch_api.wave_client import ANSWERED, WaveClient
from flowrun.batch.records import SourceRecord
from flowrun.batch.runner import CURRENT_RECORD, BatchRunner, _StepSink
from flowrun.batch.summary import BatchResult
from flowrun.engine import eager
from flowrun.engine.executor import Executor, starts_eagerly
from flowrun.engine.services import Services
from flowrun.errors import Suspended
from flowrun.provider.client import OpenAIClient
from flowrun.results import StepResult
from flowrun.store.batch_api_state import BatchState
from flowrun.store.batches import keep_transcript_dumped

FORGET_EVERY = 1_000  # written records whose request rows are deleted together
#: Records run together: their stored requests are read from the store in one go
CHUNK = 2_000


class CountingToolbox:
    """A toolbox whose tool calls count as busy for the coordinator (they may run in threads)."""

    def __init__(self, inner: Any, coordinator: WaveCoordinator) -> None:
        self.inner = inner
        self.coordinator = coordinator

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def run_calls(self, *args: Any, **kwargs: Any) -> Any:
        with self.coordinator.busy_span():
            return await self.inner.run_calls(*args, **kwargs)


class _LastingSink(_StepSink):
    """A Batch API record's recorder: only its ``lasting`` steps (run again, they could repeat
    something) go to the batch store as they complete, committed by the next flush."""

    __slots__ = ("lasting",)

    def __init__(self, store: Any, batch_id: str, index: int, lasting: frozenset[str]) -> None:
        super().__init__(store, batch_id, index, commit_paid=False)
        self.lasting = lasting

    def step_finished(self, run_id: str, result: StepResult) -> None:
        if result.id in self.lasting:
            super().step_finished(run_id, result)


class WaveExecutor(Executor):
    """An executor whose tool steps count as busy for the coordinator, and whose model steps
    may suspend the record until a batch answers (not a ``thread:`` step: its conversation
    is stored as it goes)."""

    def run_step(self, sid: str) -> Coroutine[Any, Any, StepResult]:  # type: ignore[override]
        # (the step's own coroutine, not one around it: a model step runs twice per answer,
        # and a suspension is raised through every frame between it and the executor)
        step = self.wf.spec.steps[sid]
        if step.type != "tool":
            ANSWERED.set(None if getattr(step, "thread", None) else set())
            return super().run_step(sid)
        return self._busy(super().run_step(sid))

    async def _busy(self, running: Coroutine[Any, Any, StepResult]) -> StepResult:
        with self.services.client.coordinator.busy_span():  # type: ignore[attr-defined]
            return await running


class WaveBatchRunner(BatchRunner):
    """``BatchRunner`` over the Batch API. ``batch_id`` names the run in the Batch API tables."""

    executor_class = WaveExecutor

    def __init__(
        self,
        *args: Any,
        state: BatchState,
        settings: WaveSettings | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        live: Services = self.services
        client: OpenAIClient = _batch_client(self.wf, live)
        budget = live.budget
        if budget is not None and not isinstance(budget, WaveBudget):
            raise TypeError("a Batch API runner needs services made for it: mode=BATCH_API")
        self.coordinator = WaveCoordinator(
            BatchTransport(client),
            state,
            self.batch_id,
            settings=settings,
            budget=budget,
            on_status=self._on_status,
            on_refusal=self._on_refusal,
        )
        # a step's requests are answered from a collected batch or parked, never awaited on
        # the network in the step: its model steps without tools or a thread may start in
        # the executor's task (``flowrun.engine.eager``)
        eager_steps = frozenset(
            sid for sid, step in self.wf.spec.steps.items() if starts_eagerly(step)
        )
        # the same services, with every request parked with the coordinator (whatever the
        # step's server), tool calls counted as busy and calls priced at Batch API rates
        self.services = dataclasses.replace(
            live,
            client=WaveClient(self.coordinator, CURRENT_RECORD.get),
            servers=None,
            toolbox=CountingToolbox(live.toolbox, self.coordinator) if live.toolbox else None,
            on_text=None,
            batch_prices=True,
            eager_steps=eager_steps,
        )
        self.state = state
        self.gate = None  # the wave budget refuses whole waves; no record is re-run
        self._written: list[int] = []  # succeeded records whose request rows can go
        # suspended records' completed steps (as bytes; past a few MB in a temporary file)
        self.waiting_steps = WaitingSteps()
        # the steps stored as they complete: a collected answer is durable in the Batch API
        # state already, so only steps that could repeat something if run again (those whose
        # code is not only flowrun's own: a tool step, a chat step with tools or a thread)
        self.lasting = frozenset(self.wf.spec.steps) - eager_steps
        # with none, a record starts in the runner's task (``engine.eager``) and gets a task
        # of its own only if it waits: most records run to their end or to their suspension
        # without waiting, at no task's cost
        self.eager_records = not self.lasting
        # the inputs (checked, defaults filled) and extra columns of records running: a record
        # that suspends waits with them, and runs again without reading its columns again
        self._inputs: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
        # the completed steps of records about to run again, and of records running again
        self._loaded: dict[int, dict[str, StepResult]] = {}
        self._given: dict[int, dict[str, StepResult]] = {}
        # records given completed steps of an earlier process (a resume): those steps' ids
        self._earlier_steps: dict[int, set[str]] = {}
        self._earlier = self.reuse  # completed steps of an earlier process (resume)
        self._stored_at_start = (
            self.store.stored_records(self.batch_id)
            if self.store is not None and self._earlier is not None
            else set()
        )
        self.reuse = self._reuse

    def _recorder(self, index: int) -> _StepSink | None:
        if self.store is None or not self.lasting:
            return None
        return _LastingSink(self.store, self.batch_id, index, self.lasting)

    def _prepare(self, rec: SourceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
        prepared = self._inputs.get(rec.index)  # (running again: as its first run made them)
        if prepared is None:
            prepared = self._inputs[rec.index] = super()._prepare(rec)
        return prepared

    def _reuse(self, index: int) -> dict[str, StepResult]:
        steps = self._loaded.pop(index, None)
        if steps is not None:  # running again: the steps it completed before it waited
            self._given[index] = steps
            return steps
        steps = self._earlier(index) if self._earlier is not None else {}
        if index in self._stored_at_start:
            self._drop_stale(index, steps)
        if steps:
            self._earlier_steps[index] = set(steps)
        return steps

    def _drop_stale(self, index: int, given: dict[str, StepResult]) -> None:
        """The steps an earlier process stored and the record is not given (the workflow
        changed) leave the store, so a suspended record never reads them back."""
        if self.store is None:
            return
        stale = set(self.store.load_steps(self.batch_id, index)) - set(given)
        if stale:
            self.store.drop_steps(self.batch_id, index, stale)

    async def _run_once(self, rec: SourceRecord) -> BatchResult | None:
        """Run the record until it finishes (its result) or is suspended waiting for a batch
        (None: only its completed steps are left, as bytes, in ``waiting_steps``)."""
        result: BatchResult | None = None
        try:
            result = await super()._run_record(rec)
        except Suspended as exc:
            if self.store is not None:  # (the Python API hands transcripts out as lists)
                for step in exc.steps.values():
                    keep_transcript_dumped(step)
            self.waiting_steps.keep(rec.index, exc.steps)
            exc.steps = {}  # (its traceback, which holds every frame, goes with the block)
        except asyncio.CancelledError:  # the run stops: what it was given waits for the resume
            given = self._given.get(rec.index)
            if given:
                self.waiting_steps.keep(rec.index, given)
            raise
        finally:
            self._given.pop(rec.index, None)
            self.coordinator.release(rec.index)
        if result is None:
            return None
        if not result.ok and self.store is not None:
            # a resume runs the record again with these steps given (counted once, as an
            # earlier run's), as a live batch's would be
            for step in result.steps.values():
                if step.id not in self.lasting:
                    self.store.add_step(self.batch_id, rec.index, step)
        earlier = self._earlier_steps.pop(rec.index, set())
        if result.steps:  # what this process paid for: steps not given by an earlier one
            result.new_calls = [
                c for sid, r in result.steps.items() if sid not in earlier for c in r.calls
            ]
        return result

    def _start(
        self, recs: list[SourceRecord], again: bool, active: dict[int, asyncio.Future[Any]]
    ) -> list[tuple[SourceRecord, asyncio.Future[Any]]]:
        """Start a chunk of records: their stored requests are read in one go (none for the
        records of a new run starting for the first time)."""
        indices = [rec.index for rec in recs]
        completed: set[str] = set()
        if again:
            self._loaded.update((i, self.waiting_steps.take(i)) for i in indices)
            # the steps every record of the chunk has: their requests are not read again
            completed = set.intersection(*(set(self._loaded[i]) for i in indices))
        if again or self.coordinator.resuming:
            self.coordinator.prefetch(indices, completed)
        started = []
        for rec in recs:
            if self.eager_records:
                task = eager.start(self._run_once(rec), f"record {rec.index}")
            else:
                task = asyncio.ensure_future(self._run_once(rec))
            active[rec.index] = task
            started.append((rec, task))
        return started

    async def results(self) -> AsyncIterator[BatchResult]:
        """Run every record; yield results in input order.

        A record runs until it finishes or is suspended; a suspended record is only its
        ``SourceRecord`` here (its requests and completed steps are in the store) until a
        batch it waits for is collected, and then runs again, a chunk of records at a time.
        """
        coordinator, summary, progress = self.coordinator, self.summary, self.progress
        wake = asyncio.Event()
        coordinator.on_runnable = wake.set
        waves = asyncio.create_task(coordinator.run(), name="flowrun-batch-api-waves")
        ticker = asyncio.ensure_future(self._tick())
        suspended: dict[int, Compact] = {}
        active: dict[int, asyncio.Future[Any]] = {}
        order: deque[int] = deque()
        # finished records waiting for an earlier one's line (past a few thousand: on disk)
        finished: dict[int, BatchResult | OnDisk] = {}
        held = HeldResults()
        errors: list[BaseException] = []
        records = iter(self.records)
        more, first, complete = True, self.check_first, False

        def ended(rec: SourceRecord, task: asyncio.Future[Any]) -> None:
            active.pop(rec.index, None)
            wake.set()
            if task.cancelled():
                return
            if task.exception() is not None:  # e.g. KeyboardInterrupt from a signal
                errors.append(task.exception())  # type: ignore[arg-type]
                return
            result = task.result()
            if result is None:
                suspended[rec.index] = _compact(rec, self._inputs.pop(rec.index))
                return
            coordinator.forget_runnable(rec.index)
            self._inputs.pop(rec.index, None)
            summary.record(result)
            next_up = bool(order) and order[0] == rec.index
            finished[rec.index] = held.keep(result, 0 if next_up else len(finished))
            progress.update()

        async def launch(recs: list[SourceRecord], again: bool) -> None:
            for rec, task in self._start(recs, again, active):
                if task.done():  # it ended without waiting (``engine.eager``): handled now,
                    ended(rec, task)  # not by a callback the event loop calls on its next turn
                else:
                    task.add_done_callback(lambda t, r=rec: ended(r, t))
            # the other tasks' turn once a chunk (as when it waited for those callbacks): a
            # group of parked requests that filled a file goes out while records are rendered
            await asyncio.sleep(0)

        try:
            while True:
                if errors:
                    raise errors[0]
                if waves.done():
                    waves.result()  # an unexpected error in the wave loop: raise it
                while order and order[0] in finished:
                    result = held.take(finished.pop(order.popleft()))
                    if result.status != "not_run":  # no line: a resume runs it
                        yield result
                        self.forget(result)
                if not order and not more:
                    break
                room = CHUNK - len(active)
                if room >= CHUNK // 4 or not active:
                    again = coordinator.take_runnable(suspended, room)
                    if again:
                        recs = [self._expand(suspended.pop(i)) for i in again]
                        await launch(recs, True)
                        continue
                    if more and summary.stopped:
                        summary.not_run += sum(1 for _ in records)
                        more = False
                    flying = len(order) - len(finished)
                    room = min(room, self.concurrency - flying, self.window - len(order))
                    if more and room > 0:
                        chunk = list(itertools.islice(records, room))
                        if not chunk:
                            more = False
                            continue
                        if first:
                            first = False
                            if chunk[0].index == 0:
                                self._check_first(chunk[0])
                        order.extend(rec.index for rec in chunk)
                        await launch(chunk, False)
                        continue
                wake.clear()
                await wake.wait()
            if self.rows is not None and not summary.stopped:
                await self._aggregate()
            complete = True
        finally:
            held.close()
            ticker.cancel()
            waves.cancel()
            for task in list(active.values()):
                task.cancel()
            await asyncio.gather(waves, ticker, *active.values(), return_exceptions=True)
            summary.duration_s = time.perf_counter() - summary.started
            self._store_waiting()
            if self.store is not None:
                self.store.flush()
            self._forget_written()
            if complete and summary.status == "succeeded":
                self.state.forget_run(self.batch_id)  # nothing is left to resume
            self.state.close()

    def _expand(self, kept: Compact) -> SourceRecord:
        """A suspended record about to run again, with the inputs its first run made."""
        index, prepared, line, typed = kept
        self._inputs[index] = unpickled(prepared)
        return SourceRecord(index, None, line, None, typed)

    def _store_waiting(self) -> None:
        """The run stops with records still waiting (or started and never run): their
        completed steps go to the batch store, so a resume gives them back as an earlier
        process's (instead of running them again from their stored answers)."""
        if self.store is not None:
            for index, steps in itertools.chain(self._loaded.items(), self.waiting_steps.drain()):
                for step in steps.values():
                    self.store.add_step(self.batch_id, index, step)
        self._loaded.clear()
        self.waiting_steps.close()

    def forget(self, result: BatchResult) -> None:
        """The record's line is written: once it succeeded, its requests and results go too."""
        super().forget(result)
        if result.ok:
            self._written.append(result.index)
            if len(self._written) >= FORGET_EVERY:
                self._forget_written()

    def _forget_written(self) -> None:
        if self._written:
            self.state.forget_records(self.batch_id, self._written)
            self._written = []

    def _on_status(self, status: WaveStatus) -> None:
        status.records_done = self.summary.done
        show = getattr(self.progress, "wave", None)
        if show is not None:
            show(status)

    def _on_refusal(self, message: str) -> None:
        if self.summary.stopped is None:
            self.summary.stopped = message


#: a suspended record as it waits: index, inputs and extra columns (pickled when they can be),
#: line, typed
Compact = tuple[int, Any, "int | None", bool]


def _compact(rec: SourceRecord, prepared: tuple[dict[str, Any], dict[str, Any]]) -> Compact:
    """A suspended record as it waits: its inputs and extra columns pickled (a few hundred
    bytes less than the parsed dicts)."""
    return (rec.index, pickled(prepared), rec.line, rec.typed)


def _batch_client(wf: Any, live: Services) -> Any:
    """The client whose Files and Batches APIs take the run's batches: the one server every
    model step calls (a named one, or the SDK's environment variables)."""
    from flowrun.errors import UsageError
    from flowrun.format.server_checks import step_server

    names = {step_server(wf, sid) for sid, step in wf.spec.steps.items() if step.type != "tool"}
    if len(names) > 1:
        shown = ", ".join(sorted(f"'{n}'" if n else "the default (OPENAI_BASE_URL)" for n in names))
        raise UsageError(
            f'via="batch-api" sends a run\'s requests to one server, and the steps use several '
            f'({shown}); use via="live", or one server for every model step'
        )
    name = next(iter(names), None)
    if name and live.servers is not None and name in live.servers.settings:
        return live.servers.client(name)
    return live.client


__all__ = ["WaveBatchRunner"]
