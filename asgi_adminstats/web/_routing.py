"""Path handling shared by the mounted and the middleware forms."""

from __future__ import annotations

from typing import Any

from starlette.routing import Mount, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..telemetry import get_logger

__all__ = ["route_bare_paths", "route_path", "with_root_path"]

logger = get_logger("asgi_adminstats")


def route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps ``path`` whole, ``root_path`` set)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def with_root_path(scope: Scope, prefix: str) -> Scope:
    # In place, as Starlette's routers update the scope they route: a copy per
    # connection is ~1 KiB held for the connection's life.
    scope["root_path"] = scope.get("root_path", "") + prefix
    return scope


class _BarePath:
    """Routes ``<mount>`` (no trailing slash) to the mounted app as ``<mount>/`` would."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(with_root_path(scope, self.prefix), receive, send)


def route_bare_paths(host: Any, target: ASGIApp) -> int:
    """Add a WebSocket route for the bare path of every ``Mount`` of ``target`` in ``host``.

    Starlette's ``Mount("/admin/ws")`` matches ``/admin/ws/...`` only, and its router
    redirects slashes for HTTP, not WebSockets: ``ws://host/admin/ws`` would get 403.
    Returns how many mounts were found.
    """
    routes = getattr(getattr(host, "router", host), "routes", None)
    if not isinstance(routes, list):
        return 0
    found = 0
    for route in list(routes):
        if not isinstance(route, Mount):
            continue
        if route.app is target or getattr(route, "_base_app", None) is target:
            found += 1
            if route.path and not any(
                isinstance(r, WebSocketRoute)
                and isinstance(r.app, _BarePath)
                and r.app.app is target
                and r.path == route.path
                for r in routes
            ):
                routes.insert(
                    routes.index(route), WebSocketRoute(route.path, _BarePath(target, route.path))
                )
                logger.debug("routing the bare path %s to the admin-stats app", route.path)
        else:
            found += route_bare_paths(route, target)
    return found
