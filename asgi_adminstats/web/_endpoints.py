"""The HTTP side of the mount: 426 at the root, ``/health``, ``/metrics``, ``/admission``,
the client files.

``/health`` and ``/metrics`` sit behind the admin token when ``protect_endpoints`` is
set: the same verifier as the WebSocket, the token from ``Authorization: Bearer``. Each
path also answers with one trailing slash (Litestar's mounts hand those on), the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from ..admission import PendingBudget
from ..auth import AuthError, TokenVerifier, bearer_token
from ..bus import BusStatus, Producer
from ..delivery import Hub
from ..protocol import CloseCode
from ..settings import Settings
from ..telemetry import CONTENT_TYPE, State

__all__ = ["NOT_STARTED", "PATHS", "Endpoints", "health_report", "metric_state"]

_STATIC = Path(__file__).parent.parent / "static"
_CLIENT_FILES = {
    "/client.js": "adminstats.js",
    "/adminstats.js": "adminstats.js",  # what the hook imports as "./adminstats.js"
    "/use-admin-websocket.js": "use-admin-websocket.js",
}

_PROTECTED = ("/health", "/metrics")

#: What the checks before the upgrade would say to the caller (PROTOCOL.md, section 4): a
#: browser cannot read the HTTP status of a refused upgrade, so its client asks here. Any
#: page may read the answer (it is about that page's own Origin and address only).
_ADMISSION = "/admission"
_ADMISSION_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

#: The paths below the mount that answer other than 404 (``routes()`` routes them), each
#: but the root also with one trailing slash.
PATHS = ("", "/", *_PROTECTED, _ADMISSION, *_CLIENT_FILES)

#: ``/health``'s status when the component is not serving: 503, so that a load balancer
#: reading only the status code stops routing to it.
NOT_STARTED = "not_started"


def health_report(
    *,
    started: bool,
    instance: str,
    hub: Hub,
    bus: BusStatus,
    producer: Producer,
    stats_queries: int,
) -> dict[str, Any]:
    """What ``<mount>/health`` answers: never secrets, only states and counts.

    ``status``: ``ok``; ``degraded`` (bus or database down, or a stats collector failing
    as ``stats.failing`` lists: still serving its clients,
    so still 200); ``not_started`` (before start-up, or from shutdown on: 503).
    """
    latest = hub.latest_data()
    database = (latest or {}).get("system", {}).get("database", {}).get("status")
    if not started:
        status = NOT_STARTED
    elif bus.up and database in ("healthy", "degraded") and not producer.failing_collectors:
        status = "ok"
    else:
        status = "degraded"
    return {
        "status": status,
        "instance": instance,
        "connections": len(hub),
        "bus": bus.as_dict(),
        "database": database,
        "producer": {
            "leading": producer.leading,
            "lastSeen": (latest or {}).get("meta", {}).get("instance"),
            "snapshots": producer.ticks,
        },
        "statsQueries": stats_queries,
        # A failing collector (e.g. an empty database: no tables) leaves its figures null.
        "stats": {"failing": producer.failing_collectors},
    }


def metric_state(hub: Hub, pending: PendingBudget, bus: BusStatus, producer: Producer) -> State:
    """What ``/metrics`` reads from the component at scrape time."""
    return State(
        connections=len(hub),
        sockets=hub.sockets,
        pending=pending.count,
        bus_up=bus.up,
        bus_reconnects=bus.reconnects,
        leading=producer.leading,
        producer_changes=producer.changes,
        snapshots=producer.ticks,
        collector_failures=producer.collector_failures,
    )


class Endpoints:
    """Answers the HTTP requests below the mount (the WebSocket is the session's)."""

    def __init__(
        self,
        settings: Settings,
        verifier: TokenVerifier,
        *,
        health: Callable[[], dict[str, Any]],
        metrics: Callable[[], bytes],
        admission: Callable[[Scope], dict[str, Any]],
    ) -> None:
        self._settings = settings
        self._verifier = verifier
        self._health = health
        self._metrics = metrics
        self._admission = admission

    async def __call__(self, path: str, scope: Scope, receive: Receive, send: Send) -> None:
        response: Response
        if len(path) > 2 and path.endswith("/"):
            path = path[:-1]  # one trailing slash, not a redirect: the same answer
        if path in ("", "/"):
            response = PlainTextResponse(
                "426 Upgrade Required: connect with a WebSocket",
                status_code=426,
                headers={"Upgrade": "websocket"},
            )
        elif path in _PROTECTED and self._endpoint_on(path):
            response = await self._protected(scope, path)
        elif path == _ADMISSION:
            response = JSONResponse(self._admission(scope), headers=_ADMISSION_HEADERS)
        elif path in _CLIENT_FILES:
            # The browser client and the React hook, next to the endpoint they talk to.
            response = FileResponse(
                _STATIC / _CLIENT_FILES[path],
                media_type="text/javascript",
                headers={"Cache-Control": "no-cache"},
            )
        else:
            response = PlainTextResponse("Not Found", status_code=404)
        await response(scope, receive, send)

    def _endpoint_on(self, path: str) -> bool:
        if path == "/health":
            return self._settings.health_endpoint
        return self._settings.metrics_endpoint

    async def _protected(self, scope: Scope, path: str) -> Response:
        """``/health`` or ``/metrics``, behind the admin token when ``protect_endpoints``."""
        if self._settings.protect_endpoints:
            denied = await self._check_admin(scope)
            if denied is not None:
                return denied
        headers = {"Cache-Control": "no-store"}
        if path == "/health":
            report = self._health()
            status = 503 if report["status"] == NOT_STARTED else 200
            return JSONResponse(report, status, headers=headers)
        return Response(self._metrics(), media_type=CONTENT_TYPE, headers=headers)

    async def _check_admin(self, scope: Scope) -> Response | None:
        challenge = {"WWW-Authenticate": 'Bearer realm="adminstats"', "Cache-Control": "no-store"}
        token = bearer_token(scope)
        if token is None:
            return PlainTextResponse("401 Unauthorized: missing token", 401, headers=challenge)
        try:
            await self._verifier.verify(token)
        except AuthError as exc:
            status = 403 if exc.code == CloseCode.FORBIDDEN else 401
            return PlainTextResponse(f"{status} {exc.reason}", status, headers=challenge)
        return None
