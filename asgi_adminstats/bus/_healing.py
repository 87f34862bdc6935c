"""A broadcaster backend that notices a lost connection, reconnects and resubscribes.

broadcaster's own Redis and Postgres backends do neither: after a blip a worker stays
silently deaf. Subclasses provide the engine-specific parts (open, subscribe, watch).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from broadcaster import BroadcastBackend, Event

from .._backoff import backoff_delay
from ..protocol import utc_timestamp
from ..telemetry import get_logger

__all__ = ["BusStatus", "HealingBackend"]

logger = get_logger("asgi_adminstats.bus")

#: Events waiting for broadcaster's listener; past this the oldest are dropped (a
#: snapshot is replaced by the next one and audit actions are replayed from the table).
QUEUE_LIMIT = 1000


class BusStatus:
    """What the bus is doing now; shown in ``meta.bus`` and ``/health``."""

    def __init__(self, backend: str) -> None:
        self.backend = backend
        self.up = True
        self.changed_at = datetime.now(UTC)
        self.reconnects = 0
        self.error: str | None = None

    def mark_down(self, error: BaseException) -> None:
        self.up = False
        self.changed_at = datetime.now(UTC)
        self.error = type(error).__name__

    def mark_up(self) -> None:
        self.up = True
        self.changed_at = datetime.now(UTC)
        self.reconnects += 1
        self.error = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "status": "up" if self.up else "down",
            "since": utc_timestamp(self.changed_at),
            "reconnects": self.reconnects,
            "error": self.error,
        }


Callback = Callable[[], Awaitable[None]]


class HealingBackend(BroadcastBackend):
    def __init__(self, *, status: BusStatus, backoff_initial: float, backoff_max: float) -> None:
        self.status = status
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._channels: set[str] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue(QUEUE_LIMIT)
        self._supervisor: asyncio.Task[None] | None = None
        self._on_down: list[Callback] = []
        self._on_up: list[Callback] = []
        self._dropped = 0
        self._closing = False
        # One operation at a time on the listening connection (neither redis-py's PubSub
        # nor an asyncpg connection takes a command while another is in flight).
        self._lock = asyncio.Lock()

    def on_down(self, callback: Callback) -> None:
        self._on_down.append(callback)

    def on_reconnect(self, callback: Callback) -> None:
        self._on_up.append(callback)

    # --- engine-specific ----------------------------------------------------------

    async def _open(self) -> None:
        """Connect and subscribe every channel in ``self._channels``."""
        raise NotImplementedError

    async def _close(self) -> None:
        raise NotImplementedError

    async def _subscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def _unsubscribe(self, channel: str) -> None:
        raise NotImplementedError

    async def _watch(self) -> None:
        """Return or raise when the subscription connection is lost."""
        raise NotImplementedError

    # --- broadcaster's interface ---------------------------------------------------

    async def connect(self) -> None:
        await self._open()
        self._supervisor = asyncio.create_task(self._supervise(), name="adminstats-bus")

    async def disconnect(self) -> None:
        # Close first: the watcher's read then fails and the supervisor sees _closing.
        # (Cancelling a read inside redis-py can hang; a closed socket never does.)
        self._closing = True
        await self._close()
        if self._supervisor is not None:
            try:
                await asyncio.wait_for(self._supervisor, 5)
            except TimeoutError:
                logger.warning("the bus supervisor did not stop in 5 s; cancelled")
            except Exception:
                logger.debug("bus supervisor ended with an error", exc_info=True)

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)
        if self.status.up:
            async with self._lock:
                await self._subscribe(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)
        if self.status.up:
            try:
                async with self._lock:
                    await self._unsubscribe(channel)
            except Exception as exc:
                # A lost connection has no subscription left to cancel; the supervisor
                # reconnects with the remaining channels only.
                logger.debug("unsubscribing %s failed: %s", channel, type(exc).__name__)

    async def next_published(self) -> Event:
        return await self._queue.get()

    def _deliver(self, channel: str, message: str) -> None:
        if self._queue.full():
            self._queue.get_nowait()
            self._dropped += 1
            if self._dropped == 1 or self._dropped % 1000 == 0:
                logger.warning("bus events dropped: %d (the consumer is behind)", self._dropped)
        self._queue.put_nowait(Event(channel, message))

    # --- healing -------------------------------------------------------------------

    async def _supervise(self) -> None:
        while not self._closing:
            try:
                await self._watch()
                error: BaseException = ConnectionError("connection closed")
            except Exception as exc:
                error = exc
            if self._closing:
                return
            await self._reconnect(error)

    async def _reconnect(self, error: BaseException) -> None:
        self.status.mark_down(error)
        lost_at = time.monotonic()
        logger.warning("bus (%s) lost: %s: %s", self.status.backend, type(error).__name__, error)
        await _run_all(self._on_down)
        attempt = 0
        while True:
            delay = backoff_delay(attempt, base=self._backoff_initial, cap=self._backoff_max)
            attempt += 1
            await asyncio.sleep(delay)
            if self._closing:
                return
            try:
                await self._close()
                await self._open()
            except Exception as exc:
                logger.info(
                    "bus (%s) reconnect attempt %d failed: %s: %s",
                    self.status.backend,
                    attempt,
                    type(exc).__name__,
                    exc,
                )
                continue
            break
        self.status.mark_up()
        logger.warning(
            "bus (%s) reconnected after %.1f s (%d attempts, %d channels)",
            self.status.backend,
            time.monotonic() - lost_at,
            attempt,
            len(self._channels),
        )
        await _run_all(self._on_up)


async def _run_all(callbacks: list[Callback]) -> None:
    for callback in callbacks:
        try:
            await callback()
        except Exception:
            logger.exception("bus status callback failed")
