"""The trigger's notifications when the bus is not the database (Redis, memory, another
PostgreSQL): the producer alone LISTENs on ``<prefix>_audit`` and forwards each id as
``record_action`` publishes one (to its clients, then on the bus), so every instance's
clients get each row once and the database sees one listener per cluster.

The connection heals as the bus does (``bus.create_listener``). While it is down, or not
connected yet, the watcher polls the table; after each (re)connection it polls once more
for the rows committed before the LISTEN began, at its next tick or before the first id
forwarded, whichever comes first, so those rows still go out in id order.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from .._backoff import backoff_delay
from ..bus import HealingBackend, create_listener
from ..telemetry import get_logger
from ._log import AuditLog

if TYPE_CHECKING:
    from ._feed import AuditFeed  # the watcher creates its listener

__all__ = ["TriggerListener"]

logger = get_logger("asgi_adminstats.audit")

_NAME = "audit-listen"  # the connection's status name in logs, and its application_name


class TriggerListener:
    def __init__(self, feed: AuditFeed, audit: AuditLog) -> None:
        self._feed = feed
        self._audit = audit
        self._settings = feed.trigger.settings
        self._channel = feed.trigger.channel
        self._dsn = feed.trigger.dsn
        #: LISTENing now: the watcher need not poll.
        self.healthy = False
        #: Set on each (re)connection: the watcher polls once for what came before.
        self.catch_up = False
        self.forwarded = 0
        self._stopping = asyncio.Event()
        self._backend: HealingBackend | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._stopping = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="adminstats-audit-listen")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self.healthy = False
        self._stopping.set()
        if task is not None:
            # Let a forward in flight finish: cancelling a query mid-way can wedge a pool.
            try:
                await asyncio.wait_for(task, 5.0)
            except TimeoutError:
                logger.warning("the audit listener's last forward did not finish in time")
        backend, self._backend = self._backend, None
        if backend is not None:
            await backend.disconnect()

    async def _run(self) -> None:
        backend = await self._connect()
        if backend is None:
            return
        stopping = asyncio.ensure_future(self._stopping.wait())
        try:
            while True:
                event = asyncio.ensure_future(backend.next_published())
                await asyncio.wait({event, stopping}, return_when=asyncio.FIRST_COMPLETED)
                if not event.done():
                    event.cancel()  # only the queue read: nothing is in flight
                    return
                try:
                    await self._forward(event.result().message)
                except Exception:
                    self.catch_up = True
                    logger.exception("forwarding an id from the audit trigger failed")
        finally:
            self.healthy = False  # whatever ended it, the watcher polls from now on
            stopping.cancel()

    async def _connect(self) -> HealingBackend | None:
        """Connected and LISTENing, retried with backoff until ``stop``."""
        attempt = 0
        while not self._stopping.is_set():
            backend = create_listener(self._dsn, self._settings, name=_NAME)
            backend.on_down(self._down)
            backend.on_reconnect(self._up)
            try:
                await backend.connect()
                await backend.subscribe(self._channel)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    await backend.disconnect()
                (logger.warning if attempt == 0 else logger.info)(
                    "listening for the audit trigger failed (%s: %s); polling the table "
                    "meanwhile, retrying",
                    type(exc).__name__,
                    (str(exc).splitlines() or [""])[0],
                )
                delay = backoff_delay(
                    attempt,
                    base=self._settings.bus_backoff_initial,
                    cap=self._settings.bus_backoff_max,
                )
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                continue
            self._backend = backend
            await self._up()
            logger.info("listening for the audit trigger on %s", self._channel)
            return backend
        return None

    async def _down(self) -> None:
        self.healthy = False

    async def _up(self) -> None:
        self.catch_up = True
        self.healthy = True

    async def _forward(self, payload: str) -> None:
        try:
            action_id = int(payload)
        except ValueError:
            logger.warning("ignored a malformed id from the audit trigger")
            return
        # Rows committed before the LISTEN began go first, in id order: polled now.
        await self._feed.watcher.catch_up()
        if self._feed.pushed(action_id):
            return  # record_action's, polled, or forwarded by the bus already
        try:
            data = await self._audit.get(action_id)
        except Exception as exc:
            self.catch_up = True  # the watcher's next poll reads it
            logger.warning("reading audit action %d failed: %s", action_id, type(exc).__name__)
            return
        if data is not None:
            self.forwarded += 1
            await self._feed.publish(data)
