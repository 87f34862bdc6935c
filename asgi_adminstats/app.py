"""``AdminStats``: the mountable ASGI app, its lifespan and ``record_action``."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from typing import Any

from broadcaster import Broadcast
from starlette.routing import BaseRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from ._autostart import AutoStart
from ._signals import ExitSignals, on_exit
from .admission import Admission, deny
from .audit import AuditFeed, AuditLog, PendingActions
from .auth import Identity, TokenVerifier
from .bus import Bus, BusStatus, Producer, create_broadcast, engine_of, masked_url
from .db import HostDatabase, open_database
from .delivery import Close, History, Hub
from .errors import NotStartedError, StartupError
from .protocol import CloseCode
from .session import Session, StarletteTransport
from .settings import Settings
from .stats import Collector, create_engine
from .telemetry import Metrics, get_logger
from .web import (
    BareRoutes,
    Endpoints,
    component_path,
    health_report,
    metric_state,
    routes_at,
    serve_lifespan,
)

__all__ = ["AdminStats", "NotStartedError", "StartupError"]

logger = get_logger("asgi_adminstats")

_NO_ORIGINS = "none: every browser Origin is refused; set ADMINSTATS_ALLOWED_ORIGINS"


class AdminStats:
    """The admin-stats WebSocket endpoint as an ASGI app.

    Mount it (``Mount("/admin/ws", app=stats)``) and wire ``stats.lifespan`` into the
    host, or wrap any ASGI app in :class:`~asgi_adminstats.AdminStatsMiddleware`.
    ``database`` (a SQLAlchemy ``AsyncEngine``, or a ``databases.Database``) and
    ``broadcast`` may be the host's own, which the host connects and disposes; otherwise
    they are made from the settings and owned by this component.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        database: HostDatabase | None = None,
        broadcast: Broadcast | None = None,
        collectors: Sequence[Collector] = (),
    ) -> None:
        self.settings = settings
        self._db = open_database(settings.database_url if database is None else database)
        #: The host's ``AsyncEngine`` or ``databases.Database``, or the owned engine.
        self.database: HostDatabase = self._db.host
        self.metrics = Metrics()
        self.hub = Hub(
            slice_size=settings.fanout_slice,
            observe=self.metrics.observe_fanout,
            history=History(n, settings.stats_interval) if (n := settings.history_points) else None,
            tally=self.metrics.tally,
        )
        self.audit = AuditLog(self._db, settings.queries)
        self._verifier = TokenVerifier(settings)
        self._admission = Admission(settings, self.metrics.tally)
        engine = engine_of(settings.broadcast_url)
        owns_bus = broadcast is None
        backend = None
        if broadcast is None:
            broadcast, self.bus_status, backend = create_broadcast(settings)
        else:
            self.bus_status = BusStatus(engine)  # the host's Broadcast: its health is theirs
        self._bus = Bus(broadcast, engine=engine, prefix=settings.channel_prefix, owned=owns_bus)
        self.feed = AuditFeed.create(settings, self.audit, self.hub, self._bus, self.bus_status)
        if backend is not None:
            backend.on_down(self.feed.bus_down)
            backend.on_reconnect(self.feed.bus_up)
        self.producer = Producer.create(
            settings,
            engine=create_engine(
                settings, database=self._db, audit=self.audit, collectors=collectors
            ),
            bus=self._bus,
            status=self.bus_status,
            hub=self.hub,
            observe_tick=self.metrics.tick_seconds.observe,
            on_leading=self.feed.watcher.lead,
        )
        self._bus.on("stats", self.hub.publish_stats)
        self._bus.on("audit", self.feed.on_bus)
        self.metrics.watch(
            lambda: metric_state(self.hub, self._admission.pending, self.bus_status, self.producer)
        )
        self._endpoints = Endpoints(
            settings,
            self._verifier,
            health=self.health,
            metrics=self.metrics.render,
            admission=self._admission.check,
        )
        self.started = False
        self._bare = BareRoutes(self)
        self._auto = AutoStart(self.startup, self.shutdown, enabled=settings.auto_start)
        self._exit = ExitSignals(on_exit(self._auto, self.hub))  # 1001 before the server

    # --- lifecycle ------------------------------------------------------------------

    async def startup(self) -> None:
        """Connect what this component owns, subscribe the bus, take the first snapshot."""
        if self._auto.claim() and self.started:
            return  # started on a request already: the lifespan owns it from now on
        if self.started:
            raise RuntimeError("AdminStats is already started")
        await self._db.connect()  # an owned engine only; StartupError naming database_url
        try:
            await self.feed.start()
            try:
                await self._bus.start()
            except Exception as exc:
                raise StartupError(
                    f"setting 'broadcast_url' ({masked_url(self.settings.broadcast_url)}): "
                    f"cannot connect: {type(exc).__name__}: {exc}"
                ) from exc
            await self.producer.first_tick()
        except BaseException:
            await self._bus.stop()
            await self._db.disconnect()
            raise
        self.producer.start()
        self.started = True
        self._exit.install()
        logger.info(
            "adminstats started (instance %s, bus %s, audit pushes %s, allowed origins %s)",
            self.settings.instance_name,
            self.bus_status.backend,
            self.feed.pushed_by,
            ", ".join(self.settings.allowed_origins) or _NO_ORIGINS,
        )

    async def shutdown(self) -> None:
        self._auto.claim()  # stopped by the host: no start on later requests, no second stop
        if not self.started:
            return
        self.started = False
        self._exit.remove()
        self.hub.close_all(Close.of(CloseCode.GOING_AWAY))
        await self.producer.close()  # after the tick in flight, if any
        await self._bus.stop()
        await self._verifier.close()
        await self._db.disconnect()  # an owned engine only: the host's stays the host's

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any = None) -> AsyncIterator[None]:
        """The host's lifespan (``Starlette(lifespan=stats.lifespan)``); given the host app,
        it also routes the bare mount path (``/admin/ws``), which ``Mount`` does not match.
        """
        if app is not None:
            self._bare.route(app)
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    def routes(self, prefix: str = "/admin/ws") -> list[BaseRoute]:
        """Routes serving this component at ``prefix`` as ``Mount(prefix, app=stats)`` does,
        for the host's own route list: ``Starlette(routes=[*stats.routes()],
        lifespan=stats.lifespan)``. ``ValueError`` unless ``prefix`` is like ``/admin/ws``.
        """
        return routes_at(self, prefix)

    # --- stats, audit, bus ----------------------------------------------------------

    async def tick(self) -> None:
        """One stats tick: produce and publish if this instance is the producer."""
        await self.producer.tick()

    async def publish_snapshot(self, data: dict[str, Any]) -> None:
        """Send ``data`` as a ``stats_update`` to every instance's ``stats`` subscribers.

        Published on the bus as the producer's snapshots are (to this instance's clients
        only while the bus is down); the next tick's snapshot replaces it.
        """
        await self._auto.require(self.started)
        await self.producer.publish(data)

    @property
    def connections(self) -> int:
        """This instance's authenticated sessions (``/health``'s ``connections``)."""
        return len(self.hub)

    async def record_action(
        self, action: str, admin: str, target_type: str, target_id: str | int | None = None
    ) -> dict[str, Any]:
        """Insert an audit action and push it to ``notifications`` subscribers at once.

        Returns the action as clients see it (only the public fields). The insert is
        committed first; then this instance's clients get it directly and the others
        through the bus (or the PostgreSQL trigger).
        """
        await self._auto.require(self.started)
        data = await self.audit.insert(action, admin, target_type, target_id)
        await self.feed.publish(data)
        return data

    @contextlib.asynccontextmanager
    async def audit_transaction(self) -> AsyncIterator[PendingActions]:
        """Audit actions that commit together with the host's own writes, or not at all.

        ``async with stats.audit_transaction() as audit:`` opens a transaction on the
        component's database (the ``database=`` passed in, or ``stats.database``): run
        your own statements inside it, on ``audit.connection`` (the transaction's
        ``AsyncConnection``) with an engine, on the same ``Database`` with ``databases``,
        and call ``await audit.record_action(...)``. If anything raises, nothing is
        written and nothing is pushed; after the commit the actions are pushed as
        ``record_action`` pushes them.
        """
        await self._auto.require(self.started)
        async with self._db.transaction() as connection:
            pending = PendingActions(self.audit, connection)
            yield pending
        for data in pending.actions:
            await self.feed.publish(data)

    async def authenticate(self, token: str) -> Identity:
        """Verify an admin token as the WebSocket does (for the host's own admin routes).

        Raises ``AuthError``: ``code`` 4401 (map to HTTP 401) or 4403 (HTTP 403).
        """
        return await self._verifier.verify(token)

    async def install_audit_trigger(self) -> None:
        """Install the PostgreSQL audit trigger (idempotent; ``adminstats init-db`` does too).

        Rows from any writer are then pushed: by its NOTIFY on a bus on the same database
        (``record_action`` stops publishing), else through the producer's listener.
        """
        await self.feed.trigger.install()

    def health(self) -> dict[str, Any]:
        """What ``<mount>/health`` answers: never secrets, only states and counts."""
        return health_report(
            started=self.started,
            instance=self.settings.instance_name,
            hub=self.hub,
            bus=self.bus_status,
            producer=self.producer,
            stats_queries=self.producer.stats_queries,
        )

    # --- ASGI -----------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await serve_lifespan(receive, send, self.startup, self.shutdown)
            return
        self._bare.request(scope)  # a host without our lifespan: its bare paths from now on
        if not self.started:
            await self._auto.ensure()  # no lifespan came (daphne): start on this request
        path = component_path(scope)
        if scope["type"] == "http":
            await self._endpoints(path, scope, receive, send)
            return
        if scope["type"] != "websocket":
            return
        websocket = WebSocket(scope, receive, send)
        if path not in ("", "/"):
            await deny(websocket, 404, "not found")
        elif not self.started:
            logger.error(self._auto.not_started())
            self.metrics.tally.attempts["rejected", "not_started"] += 1
            await deny(websocket, 503, "adminstats is not started (see the server log)")
        # Served in this frame, not a helper's: a frame less held by every open connection.
        elif (ip := await self._admission.admit(websocket)) is not None:
            await Session(
                StarletteTransport(websocket, send),
                settings=self.settings,
                verifier=self._verifier,
                hub=self.hub,
                client_ip=ip,
                tally=self.metrics.tally,
                replay=self.audit.since,
            ).run(pending=self._admission.pending)
