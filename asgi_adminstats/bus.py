"""The cross-process bus: ``broadcaster`` channels, one subscription each per instance.

broadcaster keeps an unbounded queue per subscriber, so this instance subscribes once
per channel and hands each message to the hub, never once per socket.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from broadcaster import Broadcast

__all__ = ["AUDIT_CHANNEL", "MAX_PAYLOAD_BYTES", "STATS_CHANNEL", "Bus", "PayloadTooLarge"]

logger = logging.getLogger("asgi_adminstats.bus")

STATS_CHANNEL = "adminstats_stats"
AUDIT_CHANNEL = "adminstats_audit"
#: PostgreSQL's NOTIFY payload limit (8000 bytes) bounds every backend alike.
MAX_PAYLOAD_BYTES = 7999


class PayloadTooLarge(ValueError):
    pass


Handler = Callable[[str], None]


class Bus:
    def __init__(self, broadcast: Broadcast, *, owned: bool) -> None:
        self._broadcast = broadcast
        self._owned = owned
        self._handlers: dict[str, Handler] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def on(self, channel: str, handler: Handler) -> None:
        """Route a channel's messages to ``handler`` (register before ``start``)."""
        self._handlers[channel] = handler

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

    async def publish(self, channel: str, text: str) -> None:
        size = len(text.encode())
        if size > MAX_PAYLOAD_BYTES:
            raise PayloadTooLarge(
                f"bus payload on {channel!r} is {size} bytes; the limit is {MAX_PAYLOAD_BYTES}"
            )
        await self._broadcast.publish(channel, text)

    async def _listen(self, channel: str, handler: Handler, subscribed: asyncio.Event) -> None:
        async with self._broadcast.subscribe(channel) as subscriber:
            subscribed.set()
            while True:
                event = await subscriber.get()
                try:
                    handler(event.message)
                except Exception:
                    logger.exception("handler for bus channel %r failed", channel)


def _report_end(task: asyncio.Task[None]) -> None:
    # A listener only ends by cancellation; anything else leaves this instance deaf.
    if not task.cancelled() and task.exception() is not None:
        logger.error(
            "bus listener stopped: this instance receives no pushes", exc_info=task.exception()
        )
