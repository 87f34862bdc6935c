"""A connection's bounded outbox: what is waiting to be written to one client.

Three lanes, drained in this order: control replies (pong, subscribed, error, ping),
notifications (a bounded FIFO), and the stats snapshot (one slot: the newest replaces
an older one that was never sent). Overflow asks for close 4008.

With ``deltas`` on (the client offered ``adminstats.delta``), a tick goes out as a
``stats_delta`` only when this client is known to hold exactly its base: ``held`` is
the ``seq`` of the last stats frame handed over; a frame that replaces an unsent one in
the slot, a first snapshot, or a tick without a patch goes out in full.

With nothing queued, a frame is first offered to ``express`` (the session writes it at
once if nothing is being written): most frames to idle clients never wait in a lane.
``wake`` is told when a frame was queued instead; the session then drains the lanes
with ``pop()`` in a task of its own, which ends when they are empty. A fan-out asks
``offer_tick`` / ``offer_notification`` instead: they answer the text for the caller to
write through ``direct`` itself (see ``_fanout``) when nothing is queued and ``direct``
is ready, and queue it otherwise.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ..protocol import CloseCode
from ._tick import StatsTick

__all__ = ["Close", "Direct", "Express", "Outbox"]

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


class Sink(Protocol):
    def send_text(self, text: str) -> Awaitable[None]: ...


class Direct(Protocol):
    """The connection's writer as a fan-out writes through it (``_fanout``)."""

    #: Nothing is being written and frames may be: a send may start now.
    ready: bool
    sink: Sink

    def failed(self, exc: Exception) -> None:
        """The send raised ``exc``."""

    def adopt(self, task: asyncio.Task[None]) -> None:
        """The send waits for the socket and finishes in ``task``: the write in progress."""


class Outbox:
    """Lanes are created on first use: an idle session (most of them) holds no queue (a
    deque each, ~0.6 KiB)."""

    __slots__ = (
        "_close",
        "_closing",
        "_control",
        "_express",
        "_held",
        "_notification_limit",
        "_notifications",
        "_stats",
        "_wake",
        "deltas",
        "direct",
        "on_close",
    )

    def __init__(
        self,
        notification_limit: int,
        express: Express | None = None,
        wake: Callable[[], None] | None = None,
        direct: Direct | None = None,
    ) -> None:
        self._control: deque[str] | None = None
        self._notifications: deque[str] | None = None
        self._notification_limit = notification_limit
        self._stats: str | None = None
        self._close: Close | None = None
        self._wake = wake
        self._closing: asyncio.Future[Close] | None = None
        self._express = express
        self.direct = direct
        #: Told once when a close is first asked for (the session stops reading).
        self.on_close: Callable[[], None] | None = None
        self.deltas = False
        self._held = -1  # seq of the last stats frame handed over (deltas on); -1: none

    def _idle(self) -> bool:
        """Nothing queued and no close asked for: a frame may overtake nothing."""
        return (
            self._close is None
            and not self._control
            and not self._notifications
            and self._stats is None
        )

    def _taken(self, lane: str, text: str) -> bool:
        return self._express is not None and self._idle() and self._express(lane, text)

    def _queued(self) -> None:
        if self._wake is not None:
            self._wake()

    def put_control(self, text: str) -> None:
        if self._taken("control", text):
            return
        if self._control is None:
            self._control = deque()
        if len(self._control) >= _CONTROL_LIMIT:
            self.close(Close.of(CloseCode.SLOW_CONSUMER))
            return
        self._control.append(text)
        self._queued()

    def _direct_ready(self) -> bool:
        # _idle() written out: this runs once per client per message, and a call is
        # most of its cost.
        direct = self.direct
        return (
            direct is not None
            and direct.ready
            and self._close is None
            and not self._control
            and not self._notifications
            and self._stats is None
        )

    def put_notification(self, text: str) -> None:
        if self._taken("audit_action", text):
            return
        self._queue_notification(text)

    def offer_notification(self, text: str) -> str | None:
        """``text`` back if the caller may write it through ``direct`` now, else queued."""
        if self._direct_ready():
            return text
        self._queue_notification(text)
        return None

    def _queue_notification(self, text: str) -> None:
        if self._notifications is None:
            self._notifications = deque()
        if len(self._notifications) >= self._notification_limit:
            self.close(Close.of(CloseCode.SLOW_CONSUMER))
            return
        self._notifications.append(text)
        self._queued()

    def put_stats(self, text: str) -> None:
        if self._taken("stats", text):
            return
        self._stats = text
        self._queued()

    def put_tick(self, tick: StatsTick) -> None:
        """A tick of the fan-out: its delta when the client will hold its base."""
        text = self._tick_text(tick)
        if text is not None:
            self.put_stats(text)

    def offer_tick(self, tick: StatsTick) -> str | None:
        """``put_tick``, but the text comes back if the caller may write it through
        ``direct`` now."""
        # Once per client per tick: no call for the delta logic when it is off.
        text = self._tick_text(tick) if self.deltas else tick.text
        if text is None or self._direct_ready():
            return text
        self._stats = text
        self._queued()
        return None

    def _tick_text(self, tick: StatsTick) -> str | None:
        if not self.deltas:
            return tick.text
        if tick.seq <= self._held:
            return None  # handed over already (as the latest, on subscribing), or older
        # An unsent frame in the slot is replaced: the client never gets that base.
        delta = tick.delta if tick.base == self._held and self._stats is None else None
        self._held = tick.seq
        return tick.full if delta is None else delta

    def put_latest(self, tick: StatsTick) -> None:
        """The latest snapshot, in full (on connecting, subscribing, or resyncing)."""
        if not self.deltas:
            self.put_stats(tick.text)
            return
        self._held = tick.seq
        self.put_stats(tick.full)

    def drop_stats(self) -> None:
        self._stats = None
        self._held = -1

    def close(self, close: Close) -> None:
        """Ask for the session to be closed; the first request wins."""
        if self._close is None:
            self._close = close
            if self.on_close is not None:
                self.on_close()
        if self._closing is not None and not self._closing.done():
            self._closing.set_result(self._close)

    @property
    def requested_close(self) -> Close | None:
        """The close asked for, if any (the first request)."""
        return self._close

    def closing(self) -> asyncio.Future[Close]:
        """Done with the close once one is asked for: a write stuck in a send must not
        delay it (the session waits on this beside its reader)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_future()
            if self._close is not None:
                self._closing.set_result(self._close)
        return self._closing

    def has_frames(self) -> bool:
        return self._close is None and bool(
            self._control or self._notifications or self._stats is not None
        )

    def pop(self) -> tuple[str, str] | None:
        """The next frame to write with its lane (``control``, ``audit_action`` or
        ``stats``); ``None`` when the lanes are empty or a close was asked for."""
        if self._close is not None:
            return None
        if self._control:
            return "control", self._control.popleft()
        if self._notifications:
            return "audit_action", self._notifications.popleft()
        if self._stats is not None:
            text, self._stats = self._stats, None
            return "stats", text
        return None
