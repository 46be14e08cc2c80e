"""The async scheduler: start each step the moment its own dependencies are done.

A failed step stops new steps from starting; steps already in flight finish (their calls
are paid for) and are recorded. Each step's result is handed to the recorder the moment it
completes, in the task that ran it before any other task runs (a foreach item's, the moment
the item completes: ``engine.foreach``), so nothing paid for is lost. Steps that run side by
side each have a task of their own; a step that is the only one able to run (the next link
of a chain, a join) runs in the executor's task, without one. When the run store is locked by another process, the
result stays in memory and is written as soon as the lock goes (retried with backoff for up
to ``WRITE_PATIENCE_S``); after that the run goes on, and its output says what was not saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Coroutine
from typing import Any, Protocol

from flowrun.engine import eager, foreach
from flowrun.engine.services import CURRENT_RUN_ID, Services
from flowrun.engine.steps import RUNNERS, StepEnv, StepError
from flowrun.engine.steps.base import StepRecord
from flowrun.engine.tools import STOPPING
from flowrun.errors import BudgetExceeded, FlowrunError, Suspended
from flowrun.format.graph import ReadyQueue
from flowrun.format.loader import LoadedWorkflow
from flowrun.format.templating import TemplateError, render
from flowrun.format.validation import schema_errors
from flowrun.results import CallRecord, CostReport, RunResult, StepResult
from flowrun.store.runs import StoreError, StoreLocked

FALSY_TEXT = frozenset({"", "false", "0", "no", "none", "null", "off"})
WRITE_PATIENCE_S = 600.0  # how long a step result waits for a locked run store
EAGER_TYPES = frozenset({"chat", "extract", "embed"})  # (see ``starts_eagerly``)


def starts_eagerly(step: Any) -> bool:
    """Whether a step of a run whose client never waits for the network in the step (the
    Batch API's) may start in the task that runs it (``engine.eager``): a model step without
    tools or a thread, whose code up to its first wait is flowrun's own. (Such a run's
    ``Services.eager_steps``: the executor reads them, it does not ask each step.)"""
    return (
        step.type in EAGER_TYPES
        and not getattr(step, "tools", None)
        and not getattr(step, "thread", None)
    )


class Recorder(Protocol):
    """Where step results go as they complete (the run store implements this)."""

    def step_finished(self, run_id: str, result: StepResult) -> None: ...


def is_truthy(value: Any) -> bool:
    """``when`` semantics: native falsy values, and texts like "false", "0", "no", "" are false."""
    if isinstance(value, str):
        return value.strip().lower() not in FALSY_TEXT
    return bool(value)


class Executor:
    """Runs one workflow with one set of inputs."""

    def __init__(
        self,
        workflow: LoadedWorkflow,
        inputs: dict[str, Any],
        services: Services,
        run_id: str,
        recorder: Recorder | None = None,
        completed: dict[str, StepResult] | None = None,
    ) -> None:
        self.wf = workflow
        self.inputs = inputs
        self.services = services
        self.run_id = run_id
        self.recorder = recorder
        self.results: dict[str, StepResult] = dict(completed or {})
        self._resumed = completed is not None  # the store may hold finished foreach items
        self._unsaved: list[StepResult] = []  # results waiting for a locked run store
        self._saver: asyncio.Task[str | None] | None = None
        # what templates see as steps.<id>, built once per finished step
        self._views = {sid: r.template_view() for sid, r in self.results.items()}

    def set_view(self, sid: str, view: dict[str, Any]) -> None:
        """What templates see as ``steps.<sid>`` (aggregate steps see lists over records)."""
        self._views[sid] = view

    def scope(self) -> dict[str, Any]:
        """The template names in scope: ``inputs`` and the finished ``steps``."""
        return {"inputs": self.inputs, "steps": dict(self._views)}

    async def run(self) -> RunResult:
        started = time.perf_counter()
        queue = ReadyQueue(self.wf.order, self.results)  # (by position: no keyword dict)
        notify = self.services.on_step
        if notify is not None:
            for sid in self.wf.spec.steps:
                done = self.results.get(sid)
                notify(sid, "waiting" if done is None else "done", done)
        in_flight: dict[asyncio.Future[StepResult], str] = {}
        finished = _Finished()
        failure: StepResult | None = None
        later = self.wf.aggregate_ids  # they run once after every record
        suspended = False  # a step waits for a batch: the record stops
        # with a client that never waits for the network in a step (the Batch API's: a
        # request is answered from a collected batch, or parked), model steps without tools
        # or a thread start in this task (``engine.eager``)
        eager_steps = self.services.eager_steps
        token = CURRENT_RUN_ID.set(self.run_id)  # what the steps (and their tasks) run under
        try:
            while True:
                result: StepResult | None = None
                if failure is None:
                    ready = queue.ready()
                    if later:
                        ready = [s for s in ready if s not in later]
                    if len(ready) == 1 and not in_flight:
                        # the only step that can run: it runs (and is stored) right here,
                        # without a task of its own
                        sid = ready[0]
                        if notify is not None:
                            notify(sid, "running", None)
                        try:
                            result = await self.run_step(sid)
                        except Suspended:
                            suspended = True
                            continue
                    for sid in ready if result is None else ():
                        if sid in eager_steps:
                            if notify is not None:
                                notify(sid, "running", None)
                            task = eager.start(self.run_step(sid), sid)
                        else:
                            task = asyncio.create_task(self.run_step(sid), name=sid)
                            if notify is not None:
                                notify(sid, "running", None)
                        if task.done():  # it ended without waiting (no one waits in ``next``)
                            finished.tasks.append(task)
                        else:
                            task.add_done_callback(finished.put)
                        in_flight[task] = sid
                if result is None:
                    if not in_flight:
                        break
                    # the next finished step (one wake-up per step that had to wait)
                    task = finished.tasks.popleft() if finished.tasks else await finished.next()
                    sid = in_flight.pop(task)
                    if isinstance(task.exception(), Suspended):  # (read, not raised again)
                        suspended = True  # the other steps still go as far as they can
                        del task  # (it holds the exception, whose traceback holds this frame)
                        continue
                    result = task.result()
                if notify is not None:
                    notify(sid, "done", result)  # (the step's own task, or this one, stored it)
                queue.mark_done(sid)
                if result.status == "failed" and failure is None:
                    failure = result
        except asyncio.CancelledError:
            # a step that finished before the stop was stored by its own task (even if this
            # loop had not handled its wake-up yet); the others stop
            for task in in_flight:
                task.cancel()
            if self._saver is not None:
                self._saver.cancel()
            await asyncio.gather(*in_flight, return_exceptions=True)
            raise
        finally:
            CURRENT_RUN_ID.reset(token)
        problem = await self._saver if self._saver is not None else None
        if suspended and failure is None:
            # a new one, bound to no name here: a local referring to it would make a cycle
            # (exception -> traceback -> this frame -> exception), kept until a full GC
            raise _suspended(dict(self.results))
        result = self._finish(failure, time.perf_counter() - started)
        if self._unsaved:
            steps = ", ".join(f"'{r.id}'" for r in self._unsaved)
            result.warnings.append(
                f"step(s) {steps} could not be saved in the run store ({problem}); their results "
                "are only in this output, and a resume would run them again"
            )
        return result

    def _store(self, result: StepResult) -> None:
        """Make a step's result visible to later steps, and save it (now, or when unlocked)."""
        self.results[result.id] = result
        self._views[result.id] = result.template_view()
        if self.recorder is None:
            return
        if self._unsaved:  # keep the order: behind the results already waiting
            self._unsaved.append(result)
            return
        try:
            self.recorder.step_finished(self.run_id, result)
        except StoreLocked:
            self._unsaved.append(result)
            self._saver = asyncio.create_task(self._save_when_unlocked())

    async def _save_when_unlocked(self) -> str | None:
        """Write the waiting results as soon as the store is free; why it gave up, or None."""
        assert self.recorder is not None
        deadline = time.monotonic() + WRITE_PATIENCE_S
        delay = 0.05
        while self._unsaved:
            try:
                await asyncio.to_thread(self.recorder.step_finished, self.run_id, self._unsaved[0])
            except StoreLocked as exc:
                if time.monotonic() >= deadline:
                    return f"still locked after {WRITE_PATIENCE_S:g}s: {exc.message}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            except StoreError as exc:
                return exc.message
            self._unsaved.pop(0)
        return None

    def _finish(self, failure: StepResult | None, duration: float) -> RunResult:
        # one pass over the steps in order: their results, calls and warnings
        ordered: dict[str, StepResult] = {}
        calls: list[CallRecord] = []
        warnings: list[str] = []
        for sid in self.wf.spec.steps:
            step = self.results.get(sid)
            if step is not None:
                ordered[sid] = step
                calls += step.calls
                warnings += step.warnings
        # (by position, in the order of its fields: outputs, steps, cost, error, failed step,
        # warnings, duration)
        result = RunResult(
            self.run_id,
            "succeeded",
            {},
            ordered,
            CostReport.from_calls(calls),
            None,
            None,
            warnings,
            duration,
        )
        if failure is not None:
            result.status = "failed"
            result.failed_step = failure.id
            result.error = f"step '{failure.id}' failed: {failure.error}"
            return result
        scope = self.scope()
        for name, template in self.wf.spec.outputs.items():
            try:
                result.outputs[name] = render(template, scope)
            except TemplateError as exc:
                result.status = "failed"
                result.error = f"output '{name}': {exc}"
                break
        return result

    async def run_step(self, sid: str) -> StepResult:
        """Run one step (its condition, fan-out and schema check) and save its result at once,
        in the task running it: nothing else runs between the step's end and its commit (not
        even this executor's scheduling loop). Never raises for step errors."""
        step = self.wf.spec.steps[sid]
        record = StepRecord()
        started = time.perf_counter()
        status, output, error = "succeeded", None, None
        try:
            scope = self.scope()
            if step.when is not None and not is_truthy(render(step.when, scope)):
                status = "skipped"
            elif step.foreach is not None:
                output = await self._run_foreach(sid, step, scope, record)
            else:
                output = self._checked(sid, await self._start_one(sid, step, scope, record, None))
        except Suspended:
            raise
        except (StepError, TemplateError, BudgetExceeded) as exc:
            status, error = "failed", str(exc)
        except FlowrunError as exc:
            status, error = "failed", exc.message
        except Exception as exc:  # a bug in a step runner, or a user function's surprise
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        except BaseException as exc:  # e.g. SystemExit from user code: the step failed
            if isinstance(exc, STOPPING):
                raise
            status, error = "failed", f"{type(exc).__name__}: {exc}"
        # (its fields by position, in their order: keywords would be matched one by one, at
        # every step run)
        result = StepResult(
            sid,
            status,
            output,
            record.model,
            record.calls,
            record.tool_calls,
            record.finish_reason,
            error,
            record.warnings,
            time.perf_counter() - started,
            record.transcript,
            record.kept_calls,
        )
        self._store(result)
        return result

    def _start_one(
        self, sid: str, step: Any, scope: dict[str, Any], record: StepRecord, index: int | None
    ) -> Coroutine[Any, Any, Any]:
        """The step's runner (or one foreach item's) on its way: its output, once awaited (then
        ``_checked``). (Not a coroutine around it: a step's runner is awaited through as few
        frames as can be, a Batch API step twice per answer.)"""
        env = StepEnv(sid, step, self.wf, scope, self.services, record, index)
        return RUNNERS[step.type](env)

    def _checked(self, sid: str, output: Any) -> Any:
        """A step's (or item's) output, checked against its ``output_schema``."""
        schema = self.wf.schemas.get((sid, "output_schema"))
        if schema is not None:
            errors = schema_errors(output, schema)
            if errors:
                raise StepError("output does not match output_schema: " + "; ".join(errors))
        return output

    async def _run_foreach(
        self, sid: str, step: Any, scope: dict[str, Any], record: StepRecord
    ) -> list[Any]:
        items = render(step.foreach, scope)
        if isinstance(items, dict):
            items = list(items.items())
        if not isinstance(items, (list, tuple)):
            raise StepError(
                f"foreach must give a list, got {type(items).__name__}: {str(items)[:80]!r}"
            )
        limit = asyncio.Semaphore(step.max_concurrency)
        stored = self._stored_items(sid)

        async def one(index: int, item: Any) -> Any:
            key = foreach.item_key(self.wf, sid, item, index, scope) if self._keeps_items else ""
            kept = stored.get(index)
            if kept is not None and kept[0] == key:  # answered before: not asked again
                output, sub = foreach.restored(kept[1])
                foreach.merge(record, sub)
                record.kept_calls += sum(1 for c in sub.calls if not c.failed)
                return output
            async with limit:
                sub = StepRecord()
                try:
                    running = self._start_one(
                        sid, step, {**scope, "item": item, "index": index}, sub, index
                    )
                    output = self._checked(sid, await running)
                except (StepError, TemplateError) as exc:
                    raise StepError(f"item {index}: {exc}") from None
                except BudgetExceeded as exc:
                    raise BudgetExceeded(f"item {index}: {exc.message}") from None
                finally:
                    foreach.merge(record, sub)  # paid for, however the item ended
                self._item_finished(sid, index, key, foreach.item_record(output, sub))
                return output

        tasks = [asyncio.ensure_future(one(i, item)) for i, item in enumerate(items)]
        try:
            return await _every_item(tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    @property
    def _keeps_items(self) -> bool:
        return getattr(self.recorder, "item_finished", None) is not None

    def _stored_items(self, sid: str) -> dict[int, tuple[str, dict[str, Any]]]:
        """The items of ``sid`` a run store kept from an earlier run of this run (a resume)."""
        load = getattr(self.recorder, "load_items", None)
        if load is None or not self._resumed:  # a fresh run has none
            return {}
        try:
            return load(self.run_id, sid)
        except StoreError:
            return {}

    def _item_finished(self, sid: str, index: int, key: str, item: dict[str, Any]) -> None:
        """Commit a finished item now (a store that is locked or failing: the step's result,
        saved when the step ends, is still the record; only a resume may ask it again)."""
        if not self._keeps_items:
            return
        with contextlib.suppress(StoreError):
            self.recorder.item_finished(self.run_id, sid, index, key, item)  # type: ignore[union-attr]


async def _every_item(tasks: list[asyncio.Future[Any]]) -> list[Any]:
    """The items' results in order. The first failure stops the others; an item that is
    ``Suspended`` (waiting for a batch) lets the others go as far as they can, then the step
    is suspended too (so every item's request is parked at once)."""
    pending: set[asyncio.Future[Any]] = set(tasks)
    suspended = False
    while pending:
        done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_EXCEPTION)
        for task in (t for t in tasks if t in done):  # the first item's failure first
            exc = task.exception()
            if isinstance(exc, Suspended):
                suspended = True
            elif exc is not None:
                raise exc
            del exc
    if suspended:
        raise Suspended()
    return [task.result() for task in tasks]


class _Finished:
    """The steps' finished tasks (or futures of steps that ended at once: ``engine.eager``),
    in the order they finished (an ``asyncio.Queue`` without what a queue between many
    producers and consumers needs: one is made per record run)."""

    __slots__ = ("tasks", "waiter")

    def __init__(self) -> None:
        self.tasks: deque[asyncio.Future[StepResult]] = deque()
        self.waiter: asyncio.Future[None] | None = None

    def put(self, task: asyncio.Future[StepResult]) -> None:
        self.tasks.append(task)
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def next(self) -> asyncio.Future[StepResult]:
        """The next finished task, once one finishes."""
        while not self.tasks:
            self.waiter = asyncio.get_running_loop().create_future()
            try:
                await self.waiter
            finally:
                self.waiter = None
        return self.tasks.popleft()


def _suspended(steps: dict[str, StepResult]) -> Suspended:
    signal = Suspended()
    signal.steps = steps
    return signal
