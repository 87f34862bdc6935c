"""Quart: its ASGI callable wrapped, as Quart documents for ASGI middleware
(``app.asgi_app = Middleware(app.asgi_app)``). ``AdminStatsMiddleware`` serves
``/admin/ws`` before Quart routes and starts and stops the component on the lifespan
Quart's serving runs on, around the app's own ``before_serving``/``after_serving``."""

from __future__ import annotations

from quart import Quart, request

from asgi_adminstats import AdminStats, AdminStatsMiddleware, Settings

from . import ACTION

__all__ = ["app", "stats"]

stats = AdminStats(Settings.from_env())
app = Quart(__name__)


@app.get("/")
async def home() -> tuple[str, int, dict[str, str]]:
    return "host: quart", 200, {"Content-Type": "text/plain"}


@app.post("/action")
async def action() -> dict[str, bool]:
    await stats.record_action(*ACTION, request.args.get("target"))
    return {"recorded": True}


# Quart types its ASGI callables with hypercorn's TypedDicts, the middleware takes
# Starlette's ASGIApp (MutableMapping scopes): the two do not unify for mypy.
app.asgi_app = AdminStatsMiddleware(app.asgi_app, path="/admin/ws", stats=stats)  # type: ignore[assignment, arg-type]
