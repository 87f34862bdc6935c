"""A connection's writes: straight from the caller while nothing is being written,
queued in order behind a write that waits for the socket, drained by a task that
exists only while there is something to drain.

The writer owns the connection's outbox and is its ``express`` and ``wake``. It knows
nothing of the protocol: it writes text to a ``TextSink`` (the session's transport)
and counts it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Protocol

from ..protocol import CloseCode
from ..telemetry import Tally, get_logger
from ._eager import start_eagerly
from ._outbox import Close, Outbox

__all__ = ["TextSink", "Writer"]

# The session's logger: a failed write is the session's failure.
logger = get_logger("asgi_adminstats.session")


class TextSink(Protocol):
    def send_text(self, text: str) -> Awaitable[None]:
        """Write one text frame to the client."""
        ...


class Writer:
    """Frames may be written between ``start()`` and ``stop()`` (after the session's
    `connected`, until it closes); before and after, they only queue."""

    # Slots: one per session, and thousands of sessions sit idle.
    __slots__ = ("_gone", "_name", "_serving", "_tally", "_writing", "outbox", "ready", "sink")

    def __init__(
        self,
        sink: TextSink,
        notification_limit: int,
        *,
        tally: Tally,
        name: str,
        gone: tuple[type[BaseException], ...],
    ) -> None:
        """``name``: the session's, for the log. ``gone``: what ``sink`` raises when the
        client left (not a failure: the session's reader sees it and ends the session)."""
        # The sink, not its bound send_text: one object fewer per session.
        self.sink = sink
        self._tally = tally
        self._name = name
        self._gone = gone
        self.outbox = Outbox(
            notification_limit, express=self._write_now, wake=self._drain_soon, direct=self
        )
        self._serving = False  # frames may be written (after `connected`, until closing)
        self.ready = False  # serving and nothing being written: a send may start now
        # The write in progress, if any: a direct write that had to wait for room, or
        # the drain of what queued meanwhile. None for an idle session (most of them).
        self._writing: asyncio.Task[None] | None = None

    @property
    def writing(self) -> asyncio.Task[None] | None:
        """The write in progress (a task only while a write waits or a drain is on)."""
        return self._writing

    def start(self) -> None:
        """Write from now on, first what queued before."""
        self._serving = True
        self.ready = self._writing is None
        if self.outbox.has_frames():
            self._drain_soon()

    def stop(self) -> asyncio.Task[None] | None:
        """Write no more (frames only queue); the write in progress, if any, is cancelled
        and returned for the caller to await beside its own tasks."""
        self._serving = self.ready = False
        writing = self._writing
        if writing is not None:
            writing.cancel()
        return writing

    def _write_now(self, lane: str, text: str) -> bool:
        """The outbox's express lane: write now if nothing is being written (True: taken).

        The send runs in the caller (the hub's fan-out, the reader, a timer) until it
        would wait; only then does it get a task, and frames queue behind it in order.
        """
        if not self.ready:
            return False
        try:
            task = start_eagerly(self.sink.send_text(text))
        except self._gone:
            return True  # the client left: the reader sees it and ends the session
        except Exception as exc:  # never let one session break a fan-out to the others
            self._write_failed(exc)
            return True
        self.sent(lane, text)
        if task is not None:
            self._track(task)
        return True

    def _drain_soon(self) -> None:
        """The outbox's wake-up: something queued; drain it unless a write is on."""
        if self._serving and self._writing is None:
            self._track(asyncio.get_running_loop().create_task(self._drain()))

    async def _drain(self) -> None:
        while (item := self.outbox.pop()) is not None:
            lane, text = item
            await self.sink.send_text(text)
            self.sent(lane, text)

    # --- as a fan-out's Direct (see _fanout) ---

    def sent(self, lane: str, text: str) -> None:
        tally = self._tally
        tally.sent[lane] += 1
        # isascii() is O(1) in CPython: no encoding per frame for ASCII JSON.
        tally.sent_bytes[lane] += len(text) if text.isascii() else len(text.encode())

    def failed(self, exc: Exception) -> None:
        if not isinstance(exc, self._gone):  # a client that left is the reader's to see
            self._write_failed(exc)

    def adopt(self, task: asyncio.Task[None]) -> None:
        self._track(task)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._writing = task
        self.ready = False
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        self.ready = self._serving
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if not isinstance(exc, self._gone):  # a client that left is the reader's to see
                self._write_failed(exc)
        elif self.outbox.has_frames():
            self._drain_soon()  # queued while the write waited

    def _write_failed(self, exc: BaseException) -> None:
        logger.error("session %s: a write failed", self._name, exc_info=exc)
        self.outbox.close(Close.of(CloseCode.INTERNAL_ERROR))
