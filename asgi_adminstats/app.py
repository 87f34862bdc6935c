"""``AdminStats``: the mountable ASGI app, its lifespan and ``record_action``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from broadcaster import Broadcast
from databases import Database
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from . import protocol
from ._routing import route_bare_paths, route_path
from .audit import AuditLog
from .auth import JWTVerifier
from .bus import AUDIT_CHANNEL, STATS_CHANNEL, Bus
from .guard import OriginGuard
from .hub import Hub
from .outbox import Close
from .protocol import CloseCode
from .session import Session
from .settings import Settings
from .stats import (
    Collector,
    DatabaseHealthCollector,
    DatabaseStatsCollector,
    StatsEngine,
    SystemCollector,
)

__all__ = ["AdminStats", "NotStartedError", "StartupError"]

logger = logging.getLogger("asgi_adminstats")

_NOT_STARTED = (
    "AdminStats received a connection before it was started. Mounted apps get no "
    "lifespan events: pass lifespan=stats.lifespan to Starlette/FastAPI (or enter "
    "`async with stats.lifespan(app)` in your own lifespan), or use AdminStatsMiddleware."
)


class NotStartedError(RuntimeError):
    """An operation that needs a started component ran before ``startup()``."""


class StartupError(RuntimeError):
    """The component cannot start; the message names the setting at fault."""


class AdminStats:
    """The admin-stats WebSocket endpoint as an ASGI app.

    Mount it (``Mount("/admin/ws", app=stats)``) and wire ``stats.lifespan`` into the
    host, or wrap any ASGI app in :class:`~asgi_adminstats.AdminStatsMiddleware`.
    ``database`` and ``broadcast`` may be the host's own; otherwise they are made from
    the settings and owned (connected and disconnected) by this component.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        database: Database | None = None,
        broadcast: Broadcast | None = None,
        collectors: Sequence[Collector] = (),
    ) -> None:
        self.settings = settings
        self._owns_database = database is None
        self.database = database if database is not None else Database(settings.database_url)
        self.hub = Hub()
        self.audit = AuditLog(self.database, settings.queries)
        self._verifier = JWTVerifier(settings)
        self._origins = OriginGuard(settings)
        self._bus = Bus(
            broadcast if broadcast is not None else Broadcast(settings.broadcast_url),
            owned=broadcast is None,
        )
        self._bus.on(STATS_CHANNEL, self.hub.publish_stats)
        self._bus.on(AUDIT_CHANNEL, self._on_audit)
        self._started_at = time.monotonic()
        self._engine = StatsEngine(
            [
                SystemCollector(self._started_at),
                DatabaseHealthCollector(
                    self.database,
                    settings.queries,
                    degraded_ms=settings.database_degraded_ms,
                    timeout=settings.collector_deadline * 0.9,
                ),
                DatabaseStatsCollector(
                    self.database, settings.queries, self.audit, settings.recent_actions
                ),
                *collectors,
            ],
            instance=settings.instance_name,
            timeout=settings.collector_deadline,
            connections=lambda: len(self.hub),
        )
        self._tick_task: asyncio.Task[None] | None = None
        self.started = False

    # --- lifecycle ------------------------------------------------------------------

    async def startup(self) -> None:
        """Connect what this component owns, subscribe the bus, take the first snapshot."""
        if self.started:
            raise RuntimeError("AdminStats is already started")
        if self._owns_database:
            try:
                await self.database.connect()
            except Exception as exc:
                raise StartupError(
                    f"setting 'database_url' ({self.database.url.obscure_password}): "
                    f"cannot connect: {type(exc).__name__}: {exc}"
                ) from exc
        try:
            await self._bus.start()
            await self.tick()
        except BaseException:
            await self._bus.stop()
            if self._owns_database:
                await self.database.disconnect()
            raise
        self._tick_task = asyncio.create_task(self._tick_forever(), name="adminstats-tick")
        self.started = True
        logger.info("adminstats started (instance %s)", self.settings.instance_name)

    async def shutdown(self) -> None:
        if not self.started:
            return
        self.started = False
        self.hub.close_all(Close.of(CloseCode.GOING_AWAY))
        if self._tick_task is not None:
            self._tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tick_task
        await self._bus.stop()
        if self._owns_database:
            await self.database.disconnect()

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """The host's lifespan (``Starlette(lifespan=stats.lifespan)``).

        Given the host app, it also routes the bare mount path (``/admin/ws`` without
        the trailing slash), which Starlette's ``Mount`` does not match for WebSockets.
        """
        if app is not None:
            route_bare_paths(app, self)
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    # --- stats and audit ------------------------------------------------------------

    async def tick(self) -> None:
        """Collect one snapshot and publish it to every instance's clients."""
        data = await self._engine.snapshot()
        text = protocol.encode(protocol.server_message("stats_update", data=data))
        try:
            await self._bus.publish(STATS_CHANNEL, text)
        except Exception:
            # Local clients still get it: a broken bus degrades the cluster, not this node.
            logger.exception("publishing the stats snapshot failed; delivering locally")
            self.hub.publish_stats(text)

    async def _tick_forever(self) -> None:
        interval = self.settings.stats_interval
        next_at = time.monotonic() + interval
        while True:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            try:
                await self.tick()
            except Exception:
                logger.exception("stats tick failed")
            # Skip ticks we were too slow for instead of bursting to catch up.
            next_at = max(next_at, time.monotonic())

    async def record_action(
        self, action: str, admin: str, target_type: str, target_id: str | int | None = None
    ) -> dict[str, Any]:
        """Insert an audit action and push it to ``notifications`` subscribers at once.

        Returns the action as clients see it (only the public fields).
        """
        if not self.started:
            raise NotStartedError(_NOT_STARTED)
        data = await self.audit.insert(action, admin, target_type, target_id)
        await self._bus.publish(AUDIT_CHANNEL, protocol.encode(data))
        return data

    def _on_audit(self, payload: str) -> None:
        data = json.loads(payload)
        message = protocol.server_message("audit_action", data=data)
        self.hub.publish_notification(protocol.encode(message))

    # --- ASGI -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._serve_lifespan(receive, send)
            return
        at_root = route_path(scope) in ("", "/")
        if scope["type"] == "http":
            response = (
                PlainTextResponse(
                    "426 Upgrade Required: connect with a WebSocket",
                    status_code=426,
                    headers={"Upgrade": "websocket"},
                )
                if at_root
                else PlainTextResponse("Not Found", status_code=404)
            )
            await response(scope, receive, send)
            return
        if scope["type"] != "websocket":
            return
        websocket = WebSocket(scope, receive, send)
        if not at_root:
            await _deny(websocket, 404, "not found")
        elif not self.started:
            logger.error(_NOT_STARTED)
            await _deny(websocket, 503, "adminstats is not started (see the server log)")
        elif not self._origins.allows(scope):
            logger.info("connection refused: forbidden origin")
            await _deny(websocket, 403, "forbidden origin")
        else:
            await Session(
                websocket, settings=self.settings, verifier=self._verifier, hub=self.hub
            ).run()

    async def _serve_lifespan(self, receive: Receive, send: Send) -> None:
        """Lifespan when this app is the server's top-level app."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return


async def _deny(websocket: WebSocket, status: int, text: str) -> None:
    """Refuse before accept: an HTTP response where the server can send one."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        await websocket.send_denial_response(PlainTextResponse(text, status_code=status))
    else:
        await websocket.close(CloseCode.NORMAL, text)
