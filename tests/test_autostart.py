"""Starting without a lifespan: on the first request, once; stopped on the server's signal.

daphne sends no lifespan, nor does uvicorn ``--lifespan off``; a mount without
``lifespan=stats.lifespan`` never sees one either. The signal case runs uvicorn
``--lifespan off`` in a process of its own, since the stop has to come before uvicorn
re-raises the signal (SIGTERM's default action ends the process at once).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import httpx2
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.exceptions import InvalidStatus

from asgi_adminstats import AdminStats, AdminStatsMiddleware, NotStartedError

from helpers.hostproc import host_process
from support.demo_db import prepare_database
from support.loopback import SECRET, client, closed, make_settings, recv, serve, token

_HOST_APP = """
import logging
from starlette.applications import Starlette
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Mount, Route
from asgi_adminstats import AdminStats, Settings

logging.basicConfig(level=logging.INFO)  # the component's INFO lines, on stderr
stats = AdminStats(Settings.from_env())


async def ban(request):
    return JSONResponse(await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 7))


async def ping(request):
    return PlainTextResponse("pong")


app = Starlette(
    routes=[
        Route("/ban", ban, methods=["POST"]),
        Route("/ping", ping),
        Mount("/admin/ws", app=stats),
    ],
    lifespan=stats.lifespan,  # wired, but uvicorn --lifespan off never runs it
)
"""


def _no_lifespan_host(stats: AdminStats) -> Starlette:
    return Starlette(routes=[Mount("/admin/ws", app=stats)])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_lifespan_off_starts_on_first_request_and_stops_on_the_signal(
    tmp_path: Path, sig: signal.Signals
) -> None:
    async with host_process(
        tmp_path, _HOST_APP, "--lifespan", "off", ready="/ping", ADMINSTATS_STATS_INTERVAL="0.5"
    ) as host:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{host.port}") as http:
            # A host route before any WebSocket: record_action starts the component.
            banned = await http.post("/ban")
        assert banned.status_code == 200, banned.text
        assert banned.json()["action"] == "BAN_PLAYER"
        async with client(f"ws://127.0.0.1:{host.port}/admin/ws/", tok=token()) as ws:
            assert (await recv(ws))["type"] == "connected"
            host.proc.send_signal(sig)
            code, _ = await closed(ws, timeout=10)
        assert code == 1001  # the component's going-away, before uvicorn's own 1012
        await asyncio.wait_for(host.proc.wait(), 15)
        log = await host.log()
    assert log.count("started on its first request") == 1, log
    assert f"adminstats stopped (signal {sig.name})" in log, log
    assert "deleted before being closed" not in log, log  # aiosqlite's: the engine disposed


async def test_concurrent_first_requests_share_one_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    caplog.set_level(logging.INFO, "asgi_adminstats")
    async with serve(_no_lifespan_host(stats)) as addr:

        async def connect() -> str:
            async with client(f"ws://{addr}/admin/ws/", tok=token()) as ws:
                return str((await recv(ws))["type"])

        types = await asyncio.gather(*(connect() for _ in range(8)))
        assert types == ["connected"] * 8
        assert stats.started
        assert caplog.text.count("started on its first request") == 1
        assert caplog.text.count("adminstats started (") == 1
    await stats.shutdown()


async def test_the_middleware_starts_on_its_own_when_the_server_sends_no_lifespan(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    host = AdminStatsMiddleware(Starlette(), path="/admin/ws", stats=stats)
    caplog.set_level(logging.INFO, "asgi_adminstats")
    async with (
        serve(host, lifespan="off") as addr,
        client(f"ws://{addr}/admin/ws", tok=token()) as ws,
    ):
        assert (await recv(ws))["type"] == "connected"
        assert (await recv(ws))["type"] == "stats_update"
    assert "started on its first request" in caplog.text
    assert "use AdminStatsMiddleware" not in caplog.text
    await stats.shutdown()


async def test_a_failed_start_is_logged_once_refused_with_503_and_not_retried_at_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, broadcast_url="redis://127.0.0.1:1/0")
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    attempts = 0
    startup = stats.startup

    async def counted() -> None:
        nonlocal attempts
        attempts += 1
        await startup()

    stats._auto._startup = counted
    caplog.set_level(logging.INFO, "asgi_adminstats")
    async with serve(_no_lifespan_host(stats)) as addr:
        for _ in range(3):
            with pytest.raises(InvalidStatus) as refused:
                async with client(f"ws://{addr}/admin/ws/", tok=token()):
                    pass
            assert refused.value.response.status_code == 503
    assert attempts == 1  # the later requests came within the retry interval
    failures = [r for r in caplog.records if "could not start" in r.getMessage()]
    assert len(failures) == 1 and "setting 'broadcast_url'" in failures[0].getMessage()
    with pytest.raises(NotStartedError, match="failed"):
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
    assert not stats.started


async def test_auto_start_off_refuses_with_what_to_wire(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, auto_start=False)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    with pytest.raises(NotStartedError) as err:
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
    assert "lifespan=stats.lifespan" in str(err.value)
    assert "use AdminStatsMiddleware" not in str(err.value)
    assert not stats.started


async def test_a_lifespan_after_an_auto_start_takes_it_over(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)  # started here
    assert stats.started
    async with stats.lifespan():  # no "already started": the lifespan owns it now
        assert stats.started
    assert not stats.started
    with pytest.raises(NotStartedError):  # and no start on requests after its shutdown
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 2)


def test_auto_start_is_a_setting_from_the_environment(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    assert settings.auto_start is True
    off = type(settings).from_env({"ADMINSTATS_JWT_SECRET": SECRET, "ADMINSTATS_AUTO_START": "0"})
    assert off.auto_start is False
