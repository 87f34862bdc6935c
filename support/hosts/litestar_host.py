"""Litestar: an ``@asgi(..., is_mount=True)`` handler handing ``/admin/ws`` and below to
the component, its lifespan in ``Litestar(lifespan=[...])``.

Litestar hands a mounted app ``path`` as the part below the mount, always with a
trailing slash (``/``, ``/health/``), and leaves ``root_path`` as it was: the component
answers each of its paths with one trailing slash too.
"""

from __future__ import annotations

from litestar import Litestar, get, post
from litestar.handlers import asgi
from starlette.types import Receive, Scope, Send

from asgi_adminstats import AdminStats, Settings

from . import ACTION

__all__ = ["app", "stats"]

stats = AdminStats(Settings.from_env())


@asgi("/admin/ws", is_mount=True, copy_scope=True)
async def admin_ws(scope: Scope, receive: Receive, send: Send) -> None:
    await stats(scope, receive, send)


@get("/", media_type="text/plain")
async def home() -> str:
    return "host: litestar"


@post("/action", status_code=200)
async def action(target: str | None = None) -> dict[str, bool]:
    await stats.record_action(*ACTION, target)
    return {"recorded": True}


app = Litestar(route_handlers=[home, action, admin_ws], lifespan=[stats.lifespan])
