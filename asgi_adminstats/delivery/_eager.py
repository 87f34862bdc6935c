"""Run a coroutine at once, in the caller, until it first has to wait.

A fan-out to thousands of idle sessions would otherwise wake one writer task per
session per message; an ASGI ``send`` that has room in the socket buffer finishes
without waiting, so it runs right here and only a send that must wait gets a task.
This is Python 3.12's ``eager_task_factory`` for one coroutine, on 3.11 too.
"""

from __future__ import annotations

import asyncio
import types
from collections.abc import Awaitable, Coroutine
from typing import Any

__all__ = ["finish", "start_eagerly"]


def start_eagerly(awaitable: Awaitable[None]) -> asyncio.Task[None] | None:
    """Step ``awaitable`` now; ``None`` if it finished, else a task that finishes it.

    An exception raised before the first wait propagates to the caller.
    """
    # The exact type first: an ABC isinstance() check costs more than the rest here.
    if type(awaitable) is types.CoroutineType or isinstance(awaitable, Coroutine):
        coro = awaitable
    else:
        coro = _wrap(awaitable)
    try:
        waiting = coro.send(None)
    except StopIteration:
        return None
    return asyncio.get_running_loop().create_task(finish(coro, waiting))


async def _wrap(awaitable: Awaitable[None]) -> None:
    await awaitable  # an ASGI send may be any awaitable, not only a coroutine


async def finish(coro: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Run ``coro`` on from where it yielded ``waiting`` to its end, as a Task would."""
    try:
        while True:
            if waiting is None:  # a bare yield (asyncio.sleep(0)): one loop turn
                await asyncio.sleep(0)
            else:
                # The coroutine yielded a future it awaits; once done, resuming it makes
                # its own await return the result (or raise the exception) as usual.
                waiting._asyncio_future_blocking = False  # what a Task does on taking it
                await asyncio.wait([waiting])
            try:
                waiting = coro.send(None)
            except StopIteration:
                return
    except asyncio.CancelledError:
        # As a Task does: cancel what it waits for and let it see the cancellation
        # (closing it instead leaves e.g. websockets' drain waiter pending).
        if isinstance(waiting, asyncio.Future):
            waiting.cancel()
        try:
            coro.throw(asyncio.CancelledError())
        except (StopIteration, asyncio.CancelledError):
            pass
        else:
            coro.close()  # it went on waiting despite the cancellation: give up on it
        raise
