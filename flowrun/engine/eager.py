"""Starting a step at once, in the executor's task, and giving it a task of its own only if
it has to wait (what Python 3.12's eager tasks do, for 3.11).

Only for steps whose code up to their first wait is flowrun's own and never asks for the
running task (``asyncio.current_task``, ``asyncio.timeout``, anyio's cancel scopes: that
part runs while the executor's task is the current one): the model steps of a Batch API run
(see ``Executor.run``). Such a step that ends without waiting (its answer is in, or its
request is parked and the record suspended) costs no task, no event-loop turn and no
wake-up of the executor. One that waits goes on in a task from where it stopped, as if it
had been started in one: in a context of its own from its first line, and, if the task is
cancelled before its first turn, what the step waits for is cancelled, as a task's
cancellation does.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar

T = TypeVar("T")

_NOTHING: Any = object()


def start(coro: Coroutine[Any, Any, T], name: str) -> asyncio.Future[T]:
    """Run ``coro`` until it ends or waits: a future that is done already if it ended (its
    result or its exception), else the task that goes on with it."""
    loop = asyncio.get_running_loop()
    context = contextvars.copy_context()  # as create_task would: the step's own variables
    try:
        awaiting = context.run(coro.send, None)
    except StopIteration as stop:
        return _ended(loop, stop.value, None)
    except (KeyboardInterrupt, SystemExit):
        raise  # at once, as a task's step raises them out of the event loop
    except BaseException as exc:  # noqa: BLE001 - the caller reads it, as task.exception()
        return _ended(loop, None, exc)
    return loop.create_task(_GoingOn(coro, awaiting), name=name, context=context)


def _ended(loop: asyncio.AbstractEventLoop, result: Any, exc: BaseException | None) -> Any:
    """A done future (made here, not in ``start``: the exception's traceback holds
    ``start``'s frame, and a future among its variables would make a reference cycle, each
    freed only by a full garbage collection)."""
    ended = loop.create_future()
    if exc is None:
        ended.set_result(result)
    else:
        ended.set_exception(exc)
    return ended


class _GoingOn(Coroutine[Any, Any, Any]):
    """A started coroutine as a task's coroutine: the task's first turn finds what the
    coroutine waits for (``awaiting``: a future, or None for a bare yield), then it goes on."""

    __slots__ = ("coro", "awaiting")

    def __init__(self, coro: Coroutine[Any, Any, Any], awaiting: Any) -> None:
        self.coro = coro
        self.awaiting = awaiting

    def send(self, value: Any) -> Any:
        awaiting = self.awaiting
        if awaiting is not _NOTHING:
            self.awaiting = _NOTHING
            return awaiting
        return self.coro.send(value)

    def throw(self, typ: Any, val: Any = None, tb: Any = None) -> Any:  # type: ignore[override]
        awaiting, self.awaiting = self.awaiting, _NOTHING
        if (
            isinstance(typ, asyncio.CancelledError)
            and isinstance(awaiting, asyncio.Future)
            and awaiting.cancel(msg=typ.args[0] if typ.args else None)
        ):
            # cancelled before its first turn: what it waits for is cancelled (as a task
            # waiting for it would do), and the step finds that when it wakes up
            return awaiting
        if val is None and tb is None:
            return self.coro.throw(typ)
        return self.coro.throw(typ, val, tb)

    def close(self) -> None:
        self.coro.close()

    def __await__(self) -> Generator[Any, None, Any]:
        return self.coro.__await__()
