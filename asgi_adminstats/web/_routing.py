"""Path handling shared by the mounted, the routed and the middleware forms."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from ..telemetry import get_logger
from ._endpoints import PATHS

__all__ = [
    "BareRoutes",
    "component_path",
    "route_bare_paths",
    "route_path",
    "routes_at",
    "with_root_path",
]

logger = get_logger("asgi_adminstats")


def route_path(scope: Scope) -> str:
    """The path below the mount point (Starlette keeps ``path`` whole, ``root_path`` set)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :]
    return path


def component_path(scope: Scope) -> str:
    """The path the component answers for: what a Channels ``URLRouter`` left of the path
    (``path_remaining``, without the leading slash Django patterns drop), else the path
    below ``root_path``.

    ``re_path(r"^admin/ws/?$", stats)`` leaves ``""`` (the WebSocket, the 426);
    ``re_path(r"^admin/ws(?:/|$)", stats)`` leaves ``"health"`` for ``/admin/ws/health``.
    """
    remaining = scope.get("path_remaining")
    if isinstance(remaining, str):
        return "/" + remaining.lstrip("/") if remaining not in ("", "/") else remaining
    return route_path(scope)


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

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # Not a coroutine of its own: a frame less held by every open connection.
        return self.app(with_root_path(scope, self.prefix), receive, send)


def routes_at(app: ASGIApp, prefix: str) -> list[BaseRoute]:
    """Routes serving the component ``app`` at ``prefix`` as ``Mount(prefix, app=app)`` does.

    The WebSocket at ``prefix`` and ``prefix/``; over HTTP, every path the mount answers
    (426 at both, ``/health``, ``/metrics``, the client files, each also with a trailing
    slash), for any method as the mount does. Other paths below ``prefix`` are left to the
    host (its 404).
    """
    if not prefix.startswith("/") or prefix.endswith("/") or "{" in prefix:
        raise ValueError(
            "routes(prefix): the prefix must look like '/admin/ws' (a leading slash, "
            f"no trailing slash, no path parameters), got {prefix!r}"
        )
    at = _AtPrefix(app, prefix)
    routes: list[BaseRoute] = [WebSocketRoute(prefix, at), WebSocketRoute(prefix + "/", at)]
    paths = [*PATHS, *(path + "/" for path in PATHS if path not in ("", "/"))]
    routes += [Route(prefix + path, at, include_in_schema=False) for path in paths]
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
    """Route the bare path of every ``Mount`` of ``target`` in ``host`` to it.

    Starlette's ``Mount("/admin/ws")`` matches ``/admin/ws/...`` only: ``ws://host/admin/ws``
    would get 403, and a plain GET a 307 to ``/admin/ws/`` (its router redirects slashes
    for HTTP), where the mount root answers 426. A WebSocket route and an HTTP route
    (any method) for the bare path make both the mount root's. Returns how many mounts
    were found.
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
            if route.path and not any(_routes_bare(r, route) for r in routes):
                at = _AtPrefix(route.app, route.path)
                index = routes.index(route)
                routes[index:index] = [
                    WebSocketRoute(route.path, at),
                    Route(route.path, at, include_in_schema=False),
                ]
                logger.debug("routing the bare path %s to the admin-stats app", route.path)
        else:
            found += route_bare_paths(route, target)
    return found


def _routes_bare(route: BaseRoute, mount: Mount) -> bool:
    return (
        isinstance(route, WebSocketRoute | Route)
        and isinstance(route.app, _AtPrefix)
        and route.app.app is mount.app
        and route.path == mount.path
    )


class BareRoutes:
    """Routes the bare mount paths of each host app once: from ``stats.lifespan(app)``,
    or else on the first request the component sees from that host.

    Starlette puts the app that routed a request in ``scope["app"]`` (the innermost
    ``Starlette``/``FastAPI``), so a host whose lifespan is not wired gets the bare path
    routed from its first request below the mount on; a bare-path request before that
    never reaches the component (the host's 403 or 307 for it).
    """

    __slots__ = ("_hosts", "_target")

    def __init__(self, target: ASGIApp) -> None:
        self._target = target
        self._hosts: tuple[Any, ...] = ()  # a host or two per process, each kept once

    def route(self, host: Any) -> None:
        """Route ``host``'s bare mount paths (once per host)."""
        if any(seen is host for seen in self._hosts):
            return
        self._hosts += (host,)
        route_bare_paths(host, self._target)

    def request(self, scope: Scope) -> None:
        """A request reached the component: route its host's bare paths if not yet done."""
        host = scope.get("app")
        if host is not None and host is not self._target:
            self.route(host)
