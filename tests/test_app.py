"""Mounting: every documented form, with and without the trailing slash; lifecycle."""

from __future__ import annotations

import logging
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from websockets.exceptions import InvalidStatus

from asgi_adminstats import AdminStats, AdminStatsMiddleware, NotStartedError, StartupError

from support.demo_db import prepare_database
from support.loopback import client, make_settings, recv, recv_type, serve, token


async def _home(request: Any) -> PlainTextResponse:
    return PlainTextResponse("host home")


def starlette_mount(stats: AdminStats) -> Starlette:
    return Starlette(
        routes=[Route("/", _home), Mount("/admin/ws", app=stats)], lifespan=stats.lifespan
    )


def fastapi_mount(stats: AdminStats) -> FastAPI:
    app = FastAPI(lifespan=stats.lifespan)
    app.get("/")(lambda: PlainTextResponse("host home"))
    app.mount("/admin/ws", stats)
    return app


def middleware_form(stats: AdminStats) -> Any:
    return AdminStatsMiddleware(
        Starlette(routes=[Route("/", _home)]), path="/admin/ws", stats=stats
    )


async def plain_asgi(scope: Any, receive: Any, send: Any) -> None:
    """A host that knows nothing of lifespan or Starlette."""
    if scope["type"] != "http":
        raise RuntimeError(f"unsupported scope {scope['type']}")
    await PlainTextResponse("host home")(scope, receive, send)


def middleware_on_plain_asgi(stats: AdminStats) -> Any:
    return AdminStatsMiddleware(plain_asgi, path="/admin/ws/", stats=stats)


def fastapi_own_lifespan(stats: AdminStats) -> FastAPI:
    """A host with its own lifespan enters the component's inside it."""
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        async with stats.lifespan(app):
            yield

    app = FastAPI(lifespan=lifespan)
    app.mount("/admin/ws", stats)
    return app


def nested_mount(stats: AdminStats) -> Starlette:
    inner = Starlette(routes=[Mount("/ws", app=stats)])
    return Starlette(
        routes=[Route("/", _home), Mount("/admin", app=inner)], lifespan=stats.lifespan
    )


FORMS = [
    starlette_mount,
    fastapi_mount,
    middleware_form,
    middleware_on_plain_asgi,
    fastapi_own_lifespan,
    nested_mount,
]


@pytest.mark.parametrize("form", FORMS, ids=lambda f: f.__name__)
@pytest.mark.parametrize("path", ["/admin/ws", "/admin/ws/"])
async def test_every_mount_form_serves_both_paths(start: Any, form: Any, path: str) -> None:
    _, addr = await start(host=form)
    async with client(f"ws://{addr}{path}", tok=token()) as ws:
        assert (await recv(ws))["type"] == "connected"
        assert (await recv(ws))["type"] == "stats_update"


@pytest.mark.parametrize(
    "form",
    [starlette_mount, fastapi_mount, middleware_form, middleware_on_plain_asgi],
    ids=lambda f: f.__name__,
)
async def test_host_routes_still_work(start: Any, form: Any) -> None:
    _, addr = await start(host=form)
    async with httpx2.AsyncClient() as http:
        assert (await http.get(f"http://{addr}/")).text == "host home"
        upgrade = await http.get(f"http://{addr}/admin/ws/")
    assert upgrade.status_code == 426


MOUNTS = [starlette_mount, fastapi_mount, fastapi_own_lifespan, nested_mount]


@pytest.mark.parametrize("form", MOUNTS, ids=lambda f: f.__name__)
async def test_a_plain_get_of_either_path_gets_426_not_a_redirect(start: Any, form: Any) -> None:
    _, addr = await start(host=form)
    async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
        bare, slashed = await http.get("/admin/ws"), await http.get("/admin/ws/")
    assert (bare.status_code, slashed.status_code) == (426, 426)
    assert bare.headers["upgrade"] == "websocket"


@pytest.mark.parametrize(
    "form", [starlette_mount, fastapi_mount, middleware_form], ids=lambda f: f.__name__
)
async def test_endpoints_under_a_mount_answer_with_one_trailing_slash(
    start: Any, form: Any
) -> None:
    _, addr = await start(host=form)
    async with httpx2.AsyncClient(base_url=f"http://{addr}/admin/ws") as http:
        health = await http.get("/health/")
        metrics = await http.get("/metrics/")
        client_js = await http.get("/client.js/")
        doubled = await http.get("/health//")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert metrics.status_code == 200 and "adminstats_connections 0.0" in metrics.text
    assert client_js.status_code == 200 and "export class AdminStatsClient" in client_js.text
    assert doubled.status_code == 404


async def _outcome(url: str) -> str:
    """What a WebSocket client gets: the refusal's status and body, or the first frame."""
    try:
        async with client(url, tok=token()) as ws:
            return str((await recv(ws))["type"])
    except InvalidStatus as refused:
        return f"{refused.response.status_code} {refused.response.body!r}"


async def test_without_the_lifespan_both_paths_behave_the_same_once_a_request_came(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The component routes its host's bare path on the first request it sees (the host
    # is in scope["app"]); before that, a bare-path request never reaches it.
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    host = Starlette(routes=[Mount("/admin/ws", app=stats)])  # lifespan not wired
    async with serve(host) as addr, httpx2.AsyncClient(base_url=f"http://{addr}") as http:
        await http.get("/admin/ws/client.js")
        bare_get = await http.get("/admin/ws")
        with caplog.at_level(logging.ERROR, "asgi_adminstats"):
            slashed = await _outcome(f"ws://{addr}/admin/ws/")
            logged_slashed = caplog.text
            caplog.clear()
            bare = await _outcome(f"ws://{addr}/admin/ws")
            logged_bare = caplog.text
    assert bare_get.status_code == 426
    assert bare == slashed
    assert not bare.startswith("403")
    if bare.startswith("503"):  # not started: the refusal and the log line on both paths
        assert "not started" in bare
        assert "lifespan=stats.lifespan" in logged_slashed
        assert "lifespan=stats.lifespan" in logged_bare
    await stats.shutdown()


async def test_unknown_subpath_is_refused(start: Any) -> None:
    _, addr = await start()
    with pytest.raises(InvalidStatus) as refused:
        async with client(f"ws://{addr}/admin/ws/nothing", tok=token()):
            pass
    assert refused.value.response.status_code == 404


async def test_connection_before_lifespan_fails_clearly(
    tmp_path: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, auto_start=False)  # on, the request starts it
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    host = Starlette(routes=[Mount("/admin/ws", app=stats)])  # lifespan not wired
    async with serve(host) as addr:
        with (
            caplog.at_level(logging.ERROR, "asgi_adminstats"),
            pytest.raises(InvalidStatus) as refused,
        ):
            async with client(f"ws://{addr}/admin/ws/", tok=token()):
                pass
    assert refused.value.response.status_code == 503
    assert b"not started" in refused.value.response.body
    assert "lifespan=stats.lifespan" in caplog.text
    with pytest.raises(NotStartedError, match="lifespan"):
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)


async def test_standalone_app_runs_its_own_lifespan(tmp_path: Any) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    async with serve(stats) as addr, client(f"ws://{addr}/", tok=token()) as ws:
        assert (await recv(ws))["type"] == "connected"
    assert not stats.started


async def test_unreachable_database_degrades_stats_not_the_server(tmp_path: Any) -> None:
    url = "sqlite:///" + str(tmp_path / "missing-dir" / "x.db")
    stats = AdminStats(make_settings(tmp_path, database_url=url))
    async with (
        serve(starlette_mount(stats)) as addr,
        client(f"ws://{addr}/admin/ws", tok=token()) as ws,
    ):
        await recv(ws)
        data = (await recv(ws))["data"]
        await ws.send('{"type": "ping"}')
        assert (await recv(ws))["type"] == "pong"
    assert data["system"]["database"] == {"status": "down", "latency": None}
    assert data["meta"]["sources"]["database"]["ok"] is False
    assert data["meta"]["sources"]["queries"]["error"] == "error: OperationalError"
    assert data["online"]["users"] is None
    assert data["system"]["memory"]["used"] > 0


def test_middleware_needs_exactly_one_of_stats_or_settings(tmp_path: Any) -> None:
    with pytest.raises(TypeError, match="exactly one"):
        AdminStatsMiddleware(plain_asgi)
    with pytest.raises(ValueError, match="path"):
        AdminStatsMiddleware(plain_asgi, path="admin", settings=make_settings(tmp_path))


async def test_unreachable_database_server_fails_startup_naming_the_setting(
    tmp_path: Any,
) -> None:
    stats = AdminStats(
        make_settings(tmp_path, database_url="postgresql://admin:s3cret@127.0.0.1:1/game")
    )
    with pytest.raises(StartupError) as err:
        await stats.startup()
    message = str(err.value)
    assert "setting 'database_url'" in message and "cannot connect" in message
    assert "s3cret" not in message and "127.0.0.1:1" in message
    assert not stats.started


@pytest.mark.parametrize("form", [starlette_mount, middleware_form], ids=lambda f: f.__name__)
async def test_browser_client_and_hook_are_served_next_to_the_endpoint(
    start: Any, form: Any
) -> None:
    _, addr = await start(host=form)
    async with httpx2.AsyncClient(base_url=f"http://{addr}") as http:
        client_js = await http.get("/admin/ws/client.js")
        imported = await http.get("/admin/ws/adminstats.js")
        hook = await http.get("/admin/ws/use-admin-websocket.js")
    assert client_js.status_code == 200
    assert client_js.headers["content-type"].startswith("text/javascript")
    assert "export class AdminStatsClient" in client_js.text
    assert imported.text == client_js.text  # the hook's "./adminstats.js" import
    assert 'from "./adminstats.js"' in hook.text


async def test_a_snapshot_of_the_hosts_own_reaches_clients_through_the_bus(tmp_path: Any) -> None:
    settings = make_settings(tmp_path, auto_start=False)  # on, publishing starts it
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    with pytest.raises(NotStartedError, match="lifespan"):
        await stats.publish_snapshot({"host": 1})
    async with (
        serve(starlette_mount(stats)) as addr,
        client(f"ws://{addr}/admin/ws", tok=token()) as ws,
    ):
        await recv_type(ws, "stats_update")  # the latest snapshot, at once on connect
        assert stats.connections == 1
        await stats.publish_snapshot({"host": 1})
        assert (await recv_type(ws, "stats_update"))["data"] == {"host": 1}
