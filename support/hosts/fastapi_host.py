"""FastAPI: ``app.mount("/admin/ws", stats)``, ``FastAPI(lifespan=stats.lifespan)``,
behind the middleware a FastAPI app usually has (CORS, GZip, sessions, trusted hosts and
an ``@app.middleware("http")`` function, which sees HTTP requests only)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.middleware.trustedhost import TrustedHostMiddleware
from fastapi.responses import PlainTextResponse
from starlette.middleware.sessions import SessionMiddleware

from asgi_adminstats import AdminStats, Settings

from . import ACTION

__all__ = ["app", "stats"]

stats = AdminStats(Settings.from_env())
app = FastAPI(lifespan=stats.lifespan)
app.add_middleware(CORSMiddleware, allow_origins=list(stats.settings.allowed_origins))
app.add_middleware(GZipMiddleware)
app.add_middleware(SessionMiddleware, secret_key="matrix-host-session-key")
app.add_middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"])


@app.middleware("http")
async def served_by(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    response = await call_next(request)
    response.headers["X-Host"] = "fastapi"
    return response


@app.get("/", response_class=PlainTextResponse)
async def home() -> str:
    return "host: fastapi"


@app.post("/action")
async def action(target: str | None = None) -> dict[str, bool]:
    await stats.record_action(*ACTION, target)
    return {"recorded": True}


app.mount("/admin/ws", stats)
