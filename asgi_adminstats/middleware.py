"""``AdminStatsMiddleware``: serve the endpoint under a path of any ASGI app.

It also starts and stops the component on the host's lifespan, so nothing else needs
wiring; a host that does not speak lifespan gets it handled here.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .app import AdminStats
from .settings import Settings
from .telemetry import get_logger
from .web import route_path, with_root_path

__all__ = ["AdminStatsMiddleware"]

logger = get_logger("asgi_adminstats")


class AdminStatsMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        path: str = "/admin/ws",
        stats: AdminStats | None = None,
        settings: Settings | None = None,
    ) -> None:
        if (stats is None) == (settings is None):
            raise TypeError("AdminStatsMiddleware needs exactly one of stats= or settings=")
        if not path.startswith("/") or path.rstrip("/") == "":
            raise ValueError(f"AdminStatsMiddleware: path must be like '/admin/ws', got {path!r}")
        self.app = app
        self.path = path.rstrip("/")
        self.stats = stats if stats is not None else AdminStats(settings)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] in ("http", "websocket"):
            path = route_path(scope)
            if path == self.path or path.startswith(self.path + "/"):
                await self.stats(with_root_path(scope, self.path), receive, send)
                return
        await self.app(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        startup_seen = False
        started_here = False

        async def receive_and_start() -> Message:
            nonlocal startup_seen, started_here
            message = await receive()
            if message["type"] == "lifespan.startup":
                startup_seen = True
                if not self.stats.started:
                    await self.stats.startup()  # a failure fails the host's startup
                    started_here = True
            return message

        async def send_and_stop(message: Message) -> None:
            if message["type"].startswith("lifespan.shutdown") and started_here:
                await self.stats.shutdown()
            await send(message)

        try:
            await self.app(scope, receive_and_start, send_and_stop)
        except Exception:
            if startup_seen:
                raise
            logger.info("the host app does not speak lifespan; starting adminstats alone")
        if not startup_seen:
            await self.stats(scope, receive, send)
