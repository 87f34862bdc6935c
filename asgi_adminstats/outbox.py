"""A connection's bounded outbox: what is waiting to be written to one client.

Three lanes, drained in this order: control replies (pong, subscribed, error, ping),
notifications (a bounded FIFO), and the stats snapshot (one slot: the newest replaces
an older one that was never sent). Overflow asks for close 4008.

With nothing queued, a frame is first offered to ``express`` (the session writes it at
once if its writer is idle): most frames to idle clients never wait in a lane.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .protocol import CloseCode

__all__ = ["Close", "Express", "Outbox"]

_CONTROL_LIMIT = 32


@dataclass(frozen=True)
class Close:
    code: int
    reason: str

    @classmethod
    def of(cls, code: CloseCode, reason: str | None = None) -> Close:
        return cls(int(code), reason or code.reason)


#: ``express(lane, text)``: True if the frame was taken (written) without queueing.
Express = Callable[[str, str], bool]


class Outbox:
    def __init__(self, notification_limit: int, express: Express | None = None) -> None:
        self._control: deque[str] = deque()
        self._notifications: deque[str] = deque()
        self._notification_limit = notification_limit
        self._stats: str | None = None
        self._close: Close | None = None
        self._ready = asyncio.Event()
        self._closing = asyncio.Event()
        self._express = express

    def _taken(self, lane: str, text: str) -> bool:
        return (
            self._express is not None
            and self._close is None
            and not self._control
            and not self._notifications
            and self._stats is None
            and self._express(lane, text)
        )

    def put_control(self, text: str) -> None:
        if self._taken("control", text):
            return
        if len(self._control) >= _CONTROL_LIMIT:
            self.close(Close.of(CloseCode.SLOW_CONSUMER))
            return
        self._control.append(text)
        self._ready.set()

    def put_notification(self, text: str) -> None:
        if self._taken("audit_action", text):
            return
        if len(self._notifications) >= self._notification_limit:
            self.close(Close.of(CloseCode.SLOW_CONSUMER))
            return
        self._notifications.append(text)
        self._ready.set()

    def put_stats(self, text: str) -> None:
        if self._taken("stats", text):
            return
        self._stats = text
        self._ready.set()

    def drop_stats(self) -> None:
        self._stats = None

    def close(self, close: Close) -> None:
        """Ask the writer to close; the first request wins."""
        if self._close is None:
            self._close = close
        self._ready.set()
        self._closing.set()

    async def requested(self) -> Close:
        """The close asked for, when it is: a writer stuck in a send must not delay it."""
        await self._closing.wait()
        assert self._close is not None
        return self._close

    async def get(self) -> tuple[str, str] | Close:
        """The next frame to write with its lane (``control``, ``audit_action`` or
        ``stats``), or the close to perform."""
        while True:
            if self._close is not None:
                return self._close
            if self._control:
                return "control", self._control.popleft()
            if self._notifications:
                return "audit_action", self._notifications.popleft()
            if self._stats is not None:
                text, self._stats = self._stats, None
                return "stats", text
            self._ready.clear()
            await self._ready.wait()
