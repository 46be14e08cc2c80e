"""``flowrun.engine.eager``: a Batch API model step starts in the executor's task and gets a
task of its own only when it waits; it must then behave as if it had been in one all along
(its own context variables, cancellation reaching what it waits for). End to end, the
Batch API tests run every such step through it (extract repairs and embeddings wait)."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from flowrun.engine import eager

LABEL: contextvars.ContextVar[str] = contextvars.ContextVar("test_eager_label", default="outer")


def test_a_step_that_ends_at_once_needs_no_task() -> None:
    async def step() -> str:
        LABEL.set("inner")
        return "done"

    async def main() -> tuple[bool, bool, str, str]:
        started = eager.start(step(), "a")
        return started.done(), isinstance(started, asyncio.Task), started.result(), LABEL.get()

    done, is_task, result, label = asyncio.run(main())
    assert (done, is_task, result) == (True, False, "done")
    assert label == "outer"  # what the step set stays in its own context


def test_a_step_that_raises_at_once_hands_its_exception_over() -> None:
    async def step() -> None:
        raise KeyError("x")

    async def main() -> BaseException | None:
        return eager.start(step(), "a").exception()

    assert isinstance(asyncio.run(main()), KeyError)


def test_an_interrupt_in_a_step_that_ends_at_once_goes_up_at_once() -> None:
    started: list[str] = []

    async def step(name: str) -> None:
        started.append(name)
        raise KeyboardInterrupt

    async def main() -> None:
        for name in ("a", "b"):  # as the executor starts the steps that can run
            eager.start(step(name), name)

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(main())
    assert started == ["a"]  # nothing else ran after it


def test_a_step_that_waits_goes_on_in_its_own_task_and_context() -> None:
    seen: list[str] = []

    async def step(gate: asyncio.Future[str]) -> str:
        LABEL.set("inner")
        value = await gate
        seen.append(LABEL.get())
        return value

    async def main() -> tuple[bool, str, str]:
        gate = asyncio.get_running_loop().create_future()
        started = eager.start(step(gate), "a")
        waiting = not started.done() and isinstance(started, asyncio.Task)
        LABEL.set("changed outside")
        gate.set_result("answer")
        return waiting, await started, started.get_name()

    waiting, result, name = asyncio.run(main())
    assert (waiting, result, name) == (True, "answer", "a")
    assert seen == ["inner"]  # its variables, not the ones set outside after it started


def test_a_step_cancelled_before_its_task_runs_cancels_what_it_waits_for() -> None:
    events: list[str] = []

    async def step(gate: asyncio.Future[str]) -> str:
        try:
            return await gate
        except asyncio.CancelledError:
            events.append("step saw the cancellation")
            raise
        finally:
            events.append("step cleaned up")

    async def main() -> tuple[bool, bool]:
        gate = asyncio.get_running_loop().create_future()
        task = eager.start(step(gate), "a")
        task.cancel()  # before the task's first turn
        with pytest.raises(asyncio.CancelledError):
            await task
        return gate.cancelled(), task.cancelled()

    assert asyncio.run(main()) == (True, True)
    assert events == ["step saw the cancellation", "step cleaned up"]


def test_a_step_cancelled_while_it_waits_in_its_task_stops_as_a_task_does() -> None:
    events: list[str] = []

    async def step() -> None:
        try:
            await asyncio.sleep(0)  # a bare yield first
            await asyncio.sleep(3600)
        finally:
            events.append("cleaned up")

    async def main() -> bool:
        task = eager.start(step(), "a")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main()) is True
    assert events == ["cleaned up"]
