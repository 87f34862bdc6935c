"""The sample game backend: a few Starlette routes around a mounted ``AdminStats``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from asgi_adminstats import AdminStats, Settings, mint_token
from asgi_adminstats.auth import AuthError, Identity
from asgi_adminstats.db import async_url, statement
from asgi_adminstats.protocol import CloseCode

from . import simulator
from .db import prepare

__all__ = ["STATIC_DIR", "WS_PATH", "create_app"]

logger = logging.getLogger("sample_app")
STATIC_DIR = Path(__file__).parent / "static"
WS_PATH = "/admin/ws"
_DEV_TOKEN_TTL = 3600
_MAX_SQL_INT = 2**63 - 1
# Everything the page loads is its own; connect-src 'self' covers ws(s) to the same host.
_CSP = (
    "default-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class _Api:
    """The HTTP endpoints; collaborators come in here, never as module globals."""

    def __init__(
        self, settings: Settings, engine: AsyncEngine, stats: AdminStats, *, dev: bool
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._stats = stats
        self._dev = dev

    async def dashboard(self, request: Request) -> Response:
        return FileResponse(
            STATIC_DIR / "dashboard.html",
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
        )

    async def hook_page(self, request: Request) -> Response:
        # The React hook demo. React's UMD builds are vendored under /admin/static/vendor,
        # so the dashboard's CSP (scripts from 'self' only) holds here too.
        return FileResponse(
            STATIC_DIR / "hook.html",
            headers={"Content-Security-Policy": _CSP, "Cache-Control": "no-store"},
        )

    async def home(self, request: Request) -> Response:
        return RedirectResponse("/admin")

    async def config(self, request: Request) -> Response:
        return JSONResponse({"dev": self._dev, "wsPath": WS_PATH})

    async def dev_login(self, request: Request) -> Response:
        if self._settings.jwt_secret is None:  # tokens come from an identity provider
            return _error(404, "dev login needs ADMINSTATS_JWT_SECRET")
        token = mint_token(
            self._settings.jwt_secret,
            sub="dev-admin",
            ttl=_DEV_TOKEN_TTL,
            issuer=self._settings.jwt_issuer or self._settings.oidc_issuer,
            audience=self._settings.jwt_audience,
        )
        return JSONResponse(
            {"token": token, "warning": "development login: disable in production"},
            headers={"Cache-Control": "no-store"},
        )

    async def ban(self, request: Request) -> Response:
        return await self._moderate(request, banned=True)

    async def unban(self, request: Request) -> Response:
        return await self._moderate(request, banned=False)

    async def _identify(self, request: Request) -> Identity | Response:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _error(401, "missing bearer token")
        try:
            return await self._stats.authenticate(token.strip())
        except AuthError as exc:
            return _error(403 if exc.code == CloseCode.FORBIDDEN else 401, exc.reason)

    async def _player_exists(self, player_id: int) -> bool:
        if player_id > _MAX_SQL_INT:  # no such row, and drivers raise on the overflow
            return False
        sql = statement("SELECT id FROM players WHERE id = :id", id=player_id)
        async with self._engine.connect() as connection:
            return await connection.scalar(sql) is not None

    async def _moderate(self, request: Request, *, banned: bool) -> Response:
        identity = await self._identify(request)
        if isinstance(identity, Response):
            return identity
        player_id: int = request.path_params["player_id"]
        if not await self._player_exists(player_id):
            return _error(404, f"player {player_id} not found")
        # The moderation and its audit row commit together or not at all (one transaction,
        # on audit.connection); the push follows the commit.
        try:
            async with self._stats.audit_transaction() as audit:
                await audit.connection.execute(
                    statement(
                        "UPDATE players SET banned = :banned WHERE id = :id",
                        banned=banned,
                        id=player_id,
                    )
                )
                action = await audit.record_action(
                    "BAN_PLAYER" if banned else "UNBAN_PLAYER",
                    admin=identity.sub,
                    target_type="PLAYER",
                    target_id=player_id,
                )
        except Exception as exc:
            logger.error("moderation of player %s failed: %s", player_id, type(exc).__name__)
            return _error(503, "the audit log is unavailable: nothing was changed")
        return JSONResponse(action)


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def _not_found(request: Request, exc: Exception) -> Response:
    # API clients parse JSON; people get the usual plain text.
    if request.url.path.startswith("/admin/api/"):
        return _error(404, "not found")
    detail = exc.detail if isinstance(exc, HTTPException) else "Not Found"
    return PlainTextResponse(detail, status_code=404)


def create_app(
    settings: Settings, *, database_url: str, dev: bool = False, simulate: bool = True
) -> Starlette:
    """The game backend with the admin-stats endpoint at ``/admin/ws`` and a dashboard.

    ``dev`` adds ``POST /admin/api/dev-login`` (a token for anyone who asks: never in
    production) when there is a ``jwt_secret`` to sign it with; ``simulate`` runs fake
    player traffic so the numbers move.
    """
    # Without a secret (tokens from an identity provider) a dev login cannot sign
    # anything, and the dashboard in dev mode would hide its token field.
    dev = dev and settings.jwt_secret is not None
    # The host's engine (sqlite+aiosqlite, postgresql+asyncpg), shared with AdminStats.
    engine = create_async_engine(async_url(database_url))
    stats = AdminStats(settings, database=engine)
    api = _Api(settings, engine, stats, dev=dev)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        traffic: asyncio.Task[None] | None = None
        try:
            await prepare(engine)  # once, also with several workers
            if simulate:
                traffic = asyncio.create_task(simulator.simulate(engine), name="sample-traffic")
            # Given the app, the component also routes the bare /admin/ws (no slash).
            async with stats.lifespan(app):
                yield
        finally:
            if traffic is not None:
                traffic.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await traffic
            await engine.dispose()

    routes: list[BaseRoute] = [
        Mount(WS_PATH, app=stats),
        Route("/", api.home, methods=["GET"]),
        Route("/admin", api.dashboard, methods=["GET"]),
        Route("/admin/hook", api.hook_page, methods=["GET"]),
        Mount("/admin/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
        Route("/admin/api/config", api.config, methods=["GET"]),
        Route("/admin/api/players/{player_id:int}/ban", api.ban, methods=["POST"]),
        Route("/admin/api/players/{player_id:int}/unban", api.unban, methods=["POST"]),
    ]
    if dev:
        routes.append(Route("/admin/api/dev-login", api.dev_login, methods=["POST"]))
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={404: _not_found})
    app.state.stats = stats
    app.state.database = engine
    return app
