"""Starlette: ``Mount("/admin/ws", app=stats)`` and ``lifespan=stats.lifespan``."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route

from asgi_adminstats import AdminStats, Settings

from . import ACTION

__all__ = ["app", "stats"]

stats = AdminStats(Settings.from_env())


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("host: starlette")


async def action(request: Request) -> JSONResponse:
    await stats.record_action(*ACTION, request.query_params.get("target"))
    return JSONResponse({"recorded": True})


app = Starlette(
    routes=[
        Route("/", home),
        Route("/action", action, methods=["POST"]),
        Mount("/admin/ws", app=stats),
    ],
    lifespan=stats.lifespan,
)
