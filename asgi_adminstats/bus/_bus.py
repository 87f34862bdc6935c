"""The cross-process bus: ``broadcaster`` channels, one subscription each per instance.

broadcaster keeps an unbounded queue per subscriber, so this instance subscribes once
per channel and hands each message to its handler, never once per socket. Every
publish goes through one guard that refuses payloads over the engine's limit.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable

from broadcaster import Broadcast

from ..errors import AdminStatsError
from ..telemetry import get_logger

__all__ = ["PAYLOAD_LIMITS", "Bus", "PayloadTooLarge"]

logger = get_logger("asgi_adminstats.bus")

#: Bytes per message: PostgreSQL's NOTIFY payload is capped below 8000 bytes; Redis
#: and memory take far more, but a snapshot over 1 MiB is a mistake to report.
PAYLOAD_LIMITS = {"postgresql": 7999, "redis": 1 << 20, "memory": 1 << 20}


class PayloadTooLarge(AdminStatsError, ValueError):
    """A payload over the bus engine's limit (``PAYLOAD_LIMITS``); nothing was sent."""


Handler = Callable[[str], Awaitable[None] | None]


class Bus:
    """Named channels (``stats``, ``audit``, ``presence``) under ``prefix``."""

    def __init__(self, broadcast: Broadcast, *, engine: str, prefix: str, owned: bool) -> None:
        self._broadcast = broadcast
        self._owned = owned
        self._engine = engine
        self._prefix = prefix
        self._limit = PAYLOAD_LIMITS[engine]
        self._handlers: dict[str, Handler] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def channel(self, name: str) -> str:
        return f"{self._prefix}_{name}"

    def on(self, name: str, handler: Handler) -> None:
        """Route a channel's messages to ``handler`` (register before ``start``)."""
        self._handlers[self.channel(name)] = handler

    async def start(self) -> None:
        if self._owned:
            await self._broadcast.connect()
        ready = []
        for channel, handler in self._handlers.items():
            subscribed = asyncio.Event()
            ready.append(subscribed)
            task = asyncio.create_task(self._listen(channel, handler, subscribed))
            task.add_done_callback(_report_end)
            self._tasks.append(task)
        await asyncio.gather(*(event.wait() for event in ready))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if self._owned:
            try:
                await self._broadcast.disconnect()
            except Exception:
                # Shutting down anyway: say so, but do not fail the host's shutdown.
                logger.warning("disconnecting the bus failed", exc_info=True)

    async def publish(self, name: str, text: str) -> None:
        """Publish ``text``; raises :class:`PayloadTooLarge` or the engine's error."""
        size = len(text.encode())
        if size > self._limit:
            raise PayloadTooLarge(
                f"bus message on {self.channel(name)!r} is {size} bytes; the {self._engine} "
                f"bus takes at most {self._limit}"
            )
        await self._broadcast.publish(self.channel(name), text)

    async def publish_quietly(self, name: str, text: str) -> bool:
        """Publish; on failure log (not raise) and say so: for best-effort messages."""
        try:
            await self.publish(name, text)
        except Exception as exc:
            logger.debug("publishing on %s failed: %s", self.channel(name), type(exc).__name__)
            return False
        return True

    async def _listen(self, channel: str, handler: Handler, subscribed: asyncio.Event) -> None:
        async with self._broadcast.subscribe(channel) as subscriber:
            subscribed.set()
            while True:
                event = await subscriber.get()
                try:
                    result = handler(event.message)
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    logger.exception("handler for bus channel %r failed", channel)


def _report_end(task: asyncio.Task[None]) -> None:
    # A listener only ends by cancellation; anything else leaves this instance deaf.
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "bus listener stopped: this instance receives no pushes", exc_info=task.exception()
        )
