"""Batch runs through the Batch API: the live batch runner, advanced in waves.

``WaveBatchRunner`` is ``flowrun.batch.runner.BatchRunner`` (records streamed from the file, results
in input order, completed steps kept for resume) with three changes: the model client parks
requests with a ``WaveCoordinator`` instead of calling the API, calls are priced at Batch
API rates, and the budget is checked per wave. Every record is still an ordinary
``Executor``, so tool steps, ``when``, ``foreach``, output validation, tool-calling rounds
and extract repairs behave exactly as in live runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

from flowrun.batch.batch_api.coordinator import (
    WaveBudget,
    WaveCoordinator,
    WaveSettings,
    WaveStatus,
)
from flowrun.batch.batch_api.transport import BatchTransport
from flowrun.batch.batch_api.wave_client import ANSWERED, WaveClient
from flowrun.batch.records import SourceRecord
from flowrun.batch.runner import CURRENT_RECORD, BatchRunner
from flowrun.batch.summary import BatchResult
from flowrun.engine.executor import Executor
from flowrun.engine.services import Services
from flowrun.errors import Suspended
from flowrun.provider.client import OpenAIClient
from flowrun.results import StepResult
from flowrun.store.batch_api_state import BatchState

FORGET_EVERY = 1_000  # written records whose request rows are deleted together


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


class WaveExecutor(Executor):
    """An executor whose tool steps count as busy for the coordinator, and whose model steps
    may suspend the record until a batch answers (not a ``thread:`` step: its conversation
    is stored as it goes)."""

    async def run_step(self, sid: str) -> StepResult:
        step = self.wf.spec.steps[sid]
        if step.type != "tool":
            ANSWERED.set(None if getattr(step, "thread", None) else set())
            return await super().run_step(sid)
        with self.services.client.coordinator.busy_span():  # type: ignore[attr-defined]
            return await super().run_step(sid)


class WaveBatchRunner(BatchRunner):
    """``BatchRunner`` over the Batch API. ``batch_id`` names the run in the Batch API tables."""

    executor_class = WaveExecutor
    # a collected answer is durable in the Batch API state already (and arrives in bulk):
    # completed steps are committed with the periodic flush
    commit_paid_steps = False

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
        # the same services, with every request parked with the coordinator (whatever the
        # step's server), tool calls counted as busy and calls priced at Batch API rates
        self.services = dataclasses.replace(
            live,
            client=WaveClient(self.coordinator, CURRENT_RECORD.get),
            servers=None,
            toolbox=CountingToolbox(live.toolbox, self.coordinator) if live.toolbox else None,
            on_text=None,
            batch_prices=True,
        )
        self.state = state
        self.gate = None  # the wave budget refuses whole waves; no record is re-run
        self._written: list[int] = []  # succeeded records whose request rows can go
        # suspended records: the steps they completed, and which of those this process ran
        self._kept: dict[int, dict[str, StepResult]] = {}
        self._fresh: dict[int, set[str]] = {}
        self._given: dict[int, set[str]] = {}  # the steps the current execution started with
        self._earlier = self.reuse  # completed steps of an earlier process (resume)
        self.reuse = self._reuse

    def _reuse(self, index: int) -> dict[str, StepResult]:
        steps = self._kept.pop(index, None)
        if steps is None:
            steps = self._earlier(index) if self._earlier is not None else {}
        self._given[index] = set(steps)
        return steps

    async def _run_record(self, rec: SourceRecord) -> BatchResult:
        """Run the record; each time it is suspended (waiting for a batch), keep its completed
        steps and run it again once an answer it waits for is collected."""
        while True:
            try:
                result = await super()._run_record(rec)
            except Suspended as exc:
                fresh = self._fresh.setdefault(rec.index, set())
                given = self._given.pop(rec.index, set())
                fresh.update(sid for sid in exc.steps if sid not in given)
                self._kept[rec.index] = exc.steps
                exc.steps = {}
                result = None  # (out of the except block: its traceback holds every frame)
            if result is None:
                await self.coordinator.wait_record(rec.index)
                continue
            self._given.pop(rec.index, None)
            fresh = self._fresh.pop(rec.index, set())
            if fresh and result.steps:  # steps run before a suspension were paid for here
                result.new_calls += [
                    c for sid in fresh if sid in result.steps for c in result.steps[sid].calls
                ]
            return result

    async def results(self) -> AsyncIterator[BatchResult]:
        import asyncio

        waves = asyncio.create_task(self.coordinator.run(), name="flowrun-batch-api-waves")
        complete = False
        try:
            async for result in super().results():
                if waves.done():
                    waves.result()  # an unexpected error in the wave loop: raise it
                yield result
            complete = True
        finally:
            waves.cancel()
            await asyncio.gather(waves, return_exceptions=True)
            self._forget_written()
            if complete and self.summary.status == "succeeded":
                self.state.forget_run(self.batch_id)  # nothing is left to resume
            self.state.close()

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
