"""A read that runs in the caller's own task and can be stopped from elsewhere.

A session reads in the task the server runs it in: a reader task of its own, and the
``asyncio.wait`` beside it, would cost every idle connection ~2 KiB. To stop that read
(a close was asked for by a timer, a fan-out or shutdown) the task is cancelled, and
the cancellation is taken back with ``uncancel()`` once caught, so that the server's
own cancellation of the task is never mistaken for ours, nor ours leaked to it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from ..errors import AdminStatsError

__all__ = ["Interrupted", "Interruptible"]

T = TypeVar("T")


class Interrupted(AdminStatsError):
    """The read was interrupted (``Interruptible.interrupt``)."""


class Interruptible:
    __slots__ = ("_interrupted", "_task")

    def __init__(self) -> None:
        self._task: asyncio.Task[Any] | None = None  # while a read runs
        self._interrupted = False

    async def run(self, read: Coroutine[Any, Any, T]) -> T:
        """``await read``; raises ``Interrupted`` if ``interrupt()`` stopped it."""
        task = asyncio.current_task()
        assert task is not None  # an ASGI application always runs in a task
        self._task, self._interrupted = task, False
        try:
            result = await read
        except asyncio.CancelledError:
            if not self._interrupted or task.uncancel() > 0:
                raise  # the server's cancellation (too), not only ours
            raise Interrupted from None
        finally:
            self._task = None
        if self._interrupted:
            task.uncancel()  # something on the way swallowed our cancellation
        return result

    def interrupt(self) -> None:
        """Stop the read in progress, if any, once. From within the read itself there is
        nothing to interrupt: the reader returns on its own."""
        task = self._task
        if task is None or self._interrupted or task is asyncio.current_task():
            return
        self._interrupted = True
        task.cancel()
