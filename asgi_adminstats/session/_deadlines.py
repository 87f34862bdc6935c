"""A session's timed duties, as event-loop timers rather than a task each.

A sleeping task holds a coroutine frame and its waiters for the whole session; a
``call_later`` handle is a few hundred bytes. Thousands of idle dashboards make the
difference (see the README's Performance section).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

__all__ = ["Expiry", "Heartbeat"]


class Heartbeat:
    """``ping()`` every ``interval``; no ``pong()`` within ``timeout`` calls ``on_timeout``."""

    __slots__ = ("_due", "_interval", "_on_timeout", "_ping", "_timeout", "_timer")

    def __init__(
        self,
        interval: float,
        timeout: float,
        *,
        ping: Callable[[], None],
        on_timeout: Callable[[], None],
    ) -> None:
        self._interval = interval
        self._timeout = timeout  # Settings checks it is shorter than the interval
        self._ping = ping
        self._on_timeout = on_timeout
        self._due = False
        self._timer: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._timer = asyncio.get_running_loop().call_later(self._interval, self._send)

    def pong(self) -> None:
        self._due = False

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _send(self) -> None:
        self._due = True
        self._timer = asyncio.get_running_loop().call_later(self._timeout, self._check)
        self._ping()

    def _check(self) -> None:
        if self._due:
            self._timer = None
            self._on_timeout()
            return
        wait = self._interval - self._timeout
        self._timer = asyncio.get_running_loop().call_later(wait, self._send)


class Expiry:
    """``warn(exp)`` ``margin`` seconds before the token's ``exp``, ``expire()`` at it.

    ``set()`` again with a refreshed token's ``exp`` replaces both; ``None`` (an
    introspected token without ``exp``) sets neither. One timer at a time: the expiry's
    is set when the warning fires.
    """

    __slots__ = ("_expire", "_margin", "_timer", "_warn")

    def __init__(
        self, margin: float, *, warn: Callable[[float], None], expire: Callable[[], None]
    ) -> None:
        self._margin = margin
        self._warn = warn
        self._expire = expire
        self._timer: asyncio.TimerHandle | None = None

    def set(self, exp: float | None) -> None:
        self.stop()
        if exp is None:
            return
        delay = max(0.0, exp - self._margin - time.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._warned, exp)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _warned(self, exp: float) -> None:
        delay = max(0.0, exp - time.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._expired)
        self._warn(exp)

    def _expired(self) -> None:
        self._timer = None
        self._expire()
