"""``stats.routes(prefix)``: the explicit wiring beside ``Mount``, over a real server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from websockets.exceptions import InvalidStatus

from asgi_adminstats import AdminStats

from support.loopback import client, make_settings, recv, token


async def _home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("host home")


def starlette_routes(stats: AdminStats) -> Starlette:
    return Starlette(
        routes=[Route("/", _home), *stats.routes("/admin/ws")], lifespan=stats.lifespan
    )


def fastapi_routes(stats: AdminStats) -> FastAPI:
    app = FastAPI(lifespan=stats.lifespan)
    app.get("/")(lambda: PlainTextResponse("host home"))
    app.router.routes.extend(stats.routes())
    return app


def routes_below_a_mount(stats: AdminStats) -> Starlette:
    """The routes inside a sub-app mounted at ``/admin``: ``root_path`` adds up."""
    inner = Starlette(routes=stats.routes("/ws"))
    return Starlette(
        routes=[Route("/", _home), Mount("/admin", app=inner)], lifespan=stats.lifespan
    )


FORMS = [starlette_routes, fastapi_routes, routes_below_a_mount]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("path", ["/admin/ws", "/admin/ws/"])
async def test_the_websocket_is_served_at_both_paths(start: Any, form: Any, path: str) -> None:
    _, addr = await start(host=form)
    async with client(f"ws://{addr}{path}", tok=token()) as ws:
        assert (await recv(ws))["type"] == "connected"
        assert (await recv(ws))["type"] == "stats_update"


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
async def test_the_http_endpoints_answer_as_under_the_mount(start: Any, form: Any) -> None:
    _, addr = await start(host=form)
    async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
        home = await http.get("/")
        bare, slashed = await http.get("/admin/ws"), await http.get("/admin/ws/")
        health = await http.get("/admin/ws/health")
        metrics = await http.get("/admin/ws/metrics")
        client_js = await http.get("/admin/ws/client.js")
        hook = await http.get("/admin/ws/use-admin-websocket.js")
        elsewhere = [await http.get(p) for p in ("/admin/ws/nothing", "/admin/wsx", "/nothing")]
    assert home.text == "host home"
    assert bare.status_code == slashed.status_code == 426
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.status_code == 200 and "adminstats_connections 0.0" in metrics.text
    assert client_js.status_code == 200 and "export class AdminStatsClient" in client_js.text
    assert hook.status_code == 200 and 'from "./adminstats.js"' in hook.text
    assert [r.status_code for r in elsewhere] == [404, 404, 404]


ENDPOINTS = [
    "/health",
    "/metrics",
    "/client.js",
    "/adminstats.js",
    "/use-admin-websocket.js",
    "/admission",
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
async def test_each_endpoint_answers_with_one_trailing_slash(start: Any, form: Any) -> None:
    # As Litestar's is_mount hands them on: the same answer, not a redirect.
    _, addr = await start(host=form)
    async with httpx2.AsyncClient(base_url=f"http://{addr}/admin/ws") as http:
        answers = {p: (await http.get(p), await http.get(p + "/")) for p in ENDPOINTS}
    for path, (plain, slashed) in answers.items():
        assert (path, slashed.status_code) == (path, plain.status_code) == (path, 200)
        assert slashed.headers["content-type"] == plain.headers["content-type"]
    health, slashed_health = answers["/health"]
    assert slashed_health.json()["status"] == health.json()["status"] == "ok"
    assert "adminstats_connections 0.0" in answers["/metrics"][1].text
    assert all(plain.text == slashed.text for plain, slashed in list(answers.values())[2:])


async def test_protected_endpoints_stay_protected(start: Any) -> None:
    _, addr = await start(host=starlette_routes, protect_endpoints=True)
    async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
        missing = await http.get("/admin/ws/health")
        allowed = await http.get(
            "/admin/ws/metrics", headers={"Authorization": f"Bearer {token()}"}
        )
    assert missing.status_code == 401
    assert allowed.status_code == 200


@pytest.mark.parametrize("path", ["/admin/ws/nothing", "/admin/wsx", "/nothing"])
async def test_a_websocket_elsewhere_is_refused(start: Any, path: str) -> None:
    _, addr = await start(host=starlette_routes)
    with pytest.raises(InvalidStatus) as refused:
        async with client(f"ws://{addr}{path}", tok=token()):
            pass
    # Not a route of the component: the host's answer (Starlette closes: 403).
    assert refused.value.response.status_code == 403


def test_the_routes_list_what_the_mount_serves(tmp_path: Path) -> None:
    stats = AdminStats(make_settings(tmp_path))
    routes = stats.routes()
    sockets = [r.path for r in routes if isinstance(r, WebSocketRoute)]
    http = [r.path for r in routes if isinstance(r, Route)]
    assert sockets == ["/admin/ws", "/admin/ws/"]
    assert http == [
        "/admin/ws",
        "/admin/ws/",
        "/admin/ws/health",
        "/admin/ws/metrics",
        "/admin/ws/admission",
        "/admin/ws/client.js",
        "/admin/ws/adminstats.js",
        "/admin/ws/use-admin-websocket.js",
        "/admin/ws/health/",
        "/admin/ws/metrics/",
        "/admin/ws/admission/",
        "/admin/ws/client.js/",
        "/admin/ws/adminstats.js/",
        "/admin/ws/use-admin-websocket.js/",
    ]
    assert all(
        r.methods is None and not r.include_in_schema for r in routes if isinstance(r, Route)
    )
    other = [r.path for r in stats.routes("/ops/stats") if isinstance(r, WebSocketRoute)]
    assert other == ["/ops/stats", "/ops/stats/"]


@pytest.mark.parametrize("prefix", ["", "/", "admin/ws", "/admin/ws/", "/admin/{name}"])
def test_a_malformed_prefix_is_refused(tmp_path: Path, prefix: str) -> None:
    stats = AdminStats(make_settings(tmp_path))
    with pytest.raises(ValueError, match="must look like '/admin/ws'") as refused:
        stats.routes(prefix)
    assert repr(prefix) in str(refused.value)


class Seen:
    """A pure ASGI middleware that notes the WebSocket paths it saw."""

    def __init__(self, app: ASGIApp, paths: list[str]) -> None:
        self.app = app
        self.paths = paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            self.paths.append(scope["path"])
        await self.app(scope, receive, send)


async def test_the_bare_path_of_a_mount_keeps_its_middleware(start: Any) -> None:
    # The lifespan finds the component behind the mount's middleware (through each
    # layer's public ``app``) and routes the bare path through that middleware too.
    seen: list[str] = []

    def host(stats: AdminStats) -> Starlette:
        mount = Mount("/admin/ws", app=stats, middleware=[Middleware(Seen, paths=seen)])
        return Starlette(routes=[mount], lifespan=stats.lifespan)

    _, addr = await start(host=host)
    for path in ("/admin/ws", "/admin/ws/"):
        async with client(f"ws://{addr}{path}", tok=token()) as ws:
            assert (await recv(ws))["type"] == "connected"
    assert seen == ["/admin/ws", "/admin/ws/"]
