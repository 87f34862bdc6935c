"""Path handling shared by the mounted, the routed and the middleware forms."""

from __future__ import annotations

from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..telemetry import get_logger
from ._endpoints import PATHS

__all__ = ["route_bare_paths", "route_path", "routes_at", "with_root_path"]

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


class _AtPrefix:
    """Hands a connection to ``app`` as ``Mount(prefix, app=app)`` does: the path whole,
    ``root_path`` extended by the prefix (for ``routes()``, and for the bare ``<mount>``
    path, which the mount itself does not match)."""

    def __init__(self, app: ASGIApp, prefix: str) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(with_root_path(scope, self.prefix), receive, send)


def routes_at(app: ASGIApp, prefix: str) -> list[BaseRoute]:
    """Routes serving the component ``app`` at ``prefix`` as ``Mount(prefix, app=app)`` does.

    The WebSocket at ``prefix`` and ``prefix/``; over HTTP, every path the mount answers
    (426 at both, ``/health``, ``/metrics``, the client files), for any method as the
    mount does. Other paths below ``prefix`` are left to the host (its 404).
    """
    if not prefix.startswith("/") or prefix.endswith("/") or "{" in prefix:
        raise ValueError(
            "routes(prefix): the prefix must look like '/admin/ws' (a leading slash, "
            f"no trailing slash, no path parameters), got {prefix!r}"
        )
    at = _AtPrefix(app, prefix)
    routes: list[BaseRoute] = [WebSocketRoute(prefix, at), WebSocketRoute(prefix + "/", at)]
    routes += [Route(prefix + path, at, include_in_schema=False) for path in PATHS]
    return routes


def _serves(mount: Mount, target: ASGIApp) -> bool:
    """Whether ``mount``'s app is ``target`` or middleware around it (``Mount(middleware=)``
    included): each layer's ``app`` attribute, which Starlette's middleware all keep."""
    app: Any = mount.app
    for _ in range(64):  # a stack is a few layers deep; a cycle must not hang the lifespan
        if app is target:
            return True
        app = getattr(app, "app", None)
        if app is None:
            return False
    return False


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
        if _serves(route, target):
            found += 1
            # To the mount's app, middleware included, as the mount itself would.
            if route.path and not any(
                isinstance(r, WebSocketRoute)
                and isinstance(r.app, _AtPrefix)
                and r.app.app is route.app
                and r.path == route.path
                for r in routes
            ):
                routes.insert(
                    routes.index(route),
                    WebSocketRoute(route.path, _AtPrefix(route.app, route.path)),
                )
                logger.debug("routing the bare path %s to the admin-stats app", route.path)
        else:
            found += route_bare_paths(route, target)
    return found
