"""Shared test helpers: a real uvicorn server on a free loopback port, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from databases import Database
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.asyncio.client import ClientConnection, connect

from asgi_adminstats import AdminStats, Settings, create_default_schema, mint_token
from asgi_adminstats.sql import statement, utcnow_naive

import services

SECRET = "test-secret-" + "x" * 32
ORIGIN = "http://dashboard.example.com"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # In CI every test must run: a skipped backend test there is a missing service.
    outcome = yield
    report = outcome.get_result()
    expected_failure = hasattr(report, "wasxfail")  # xfail reports as skipped: not a skip
    if (
        report.skipped
        and not expected_failure
        and os.environ.get("ADMINSTATS_REQUIRE_SERVICES") == "1"
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (ADMINSTATS_REQUIRE_SERVICES=1): {report.longrepr}"


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "database_url": f"sqlite:///{tmp_path / 'stats.db'}",
        "allowed_origins": (ORIGIN,),
        "instance_name": "test-1",
    }
    values.update(overrides)
    return Settings(**values)


def token(sub: str = "alice", **kwargs: Any) -> str:
    return mint_token(SECRET, sub=sub, **kwargs)


@contextlib.asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 and a free port; yields ``host:port``."""
    cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **config)
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited during start-up")
        assert server.started, "uvicorn did not start in 5 s"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def client(
    url: str, *, tok: str | None = None, origin: str | None = ORIGIN, **kwargs: Any
) -> AsyncIterator[ClientConnection]:
    headers = kwargs.pop("additional_headers", {})
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    async with connect(
        url,
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=5,
        **kwargs,
    ) as ws:
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_type(ws: ClientConnection, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of ``type_``, skipping others (bounded by ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await recv(ws, max(0.01, deadline - loop.time()))
        if message["type"] == type_:
            return message


async def closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; the close code and reason."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    assert ws.close_code is not None, "the server did not close the connection"
    return ws.close_code, ws.close_reason or ""


async def prepare_database(url: str, *, players: int = 3) -> None:
    """The default schema with a few rows: 2 online users, ``players`` players."""
    db = Database(url)
    await db.connect()
    try:
        await create_default_schema(db)
        if await db.fetch_val("SELECT COUNT(*) FROM users"):
            return  # a second server in the same test shares the data
        now = utcnow_naive()
        for i in range(3):
            await db.execute(
                statement(
                    "INSERT INTO users (username, email, created_at) VALUES (:u, :e, :t)",
                    u=f"user{i}",
                    e=f"user{i}@example.com",
                    t=now,
                )
            )
        for user_id, age in ((1, 1), (2, 5), (2, 6), (3, 60)):
            await db.execute(
                statement(
                    "INSERT INTO sessions (user_id, last_seen_at) VALUES (:u, :t)",
                    u=user_id,
                    t=now - timedelta(minutes=age),
                )
            )
        for i in range(players):
            await db.execute(
                statement(
                    "INSERT INTO players (user_id, name, last_active_at) VALUES (1, :n, :t)",
                    n=f"p{i}",
                    t=now - timedelta(hours=2 if i else 30),
                )
            )
        await db.execute("INSERT INTO villages (player_id, name) VALUES (1, 'v1'), (1, 'v2')")
    finally:
        await db.disconnect()


def starlette_host(stats: AdminStats) -> Starlette:
    return Starlette(routes=[Mount("/admin/ws", app=stats)], lifespan=stats.lifespan)


#: The tox factor picks the engine the general suite runs on.
BACKEND = os.environ.get("ADMINSTATS_TEST_BACKEND", "memory")


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """Settings for the engine under test: bus URL, database URL, channel prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}"  # tests sharing one Redis stay apart
    if BACKEND == "memory":
        yield {"broadcast_url": "memory://"}
    elif BACKEND == "redis":
        services.require("redis")
        yield {"broadcast_url": services.REDIS_URL, "channel_prefix": prefix}
    elif BACKEND == "postgres":
        async with services.fresh_postgres_database() as url:
            yield {"broadcast_url": url, "database_url": url, "channel_prefix": prefix}
    else:
        raise ValueError(f"ADMINSTATS_TEST_BACKEND={BACKEND!r}: memory, redis or postgres")


@pytest.fixture
async def start(tmp_path: Path, backend: dict[str, str]) -> AsyncIterator[Callable[..., Any]]:
    """``await start(settings=..., host=..., collectors=...)`` -> (stats, "host:port")."""
    async with contextlib.AsyncExitStack() as stack:

        async def _start(
            settings: Settings | None = None,
            host: Callable[[AdminStats], Any] = starlette_host,
            collectors: tuple[Any, ...] = (),
            **overrides: Any,
        ) -> tuple[AdminStats, str]:
            settings = settings or make_settings(tmp_path, **{**backend, **overrides})
            await prepare_database(settings.database_url)
            stats = AdminStats(settings, collectors=collectors)
            address = await stack.enter_async_context(serve(host(stats)))
            return stats, address

        yield _start


@pytest.fixture
async def server_with(tmp_path: Path, backend: dict[str, str]) -> AsyncIterator[Callable[..., Any]]:
    """``await server_with({"ws": "wsproto"}, **settings)`` -> (stats, address).

    Like ``start``, with uvicorn options as the first argument.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def _start(uvicorn: Mapping[str, Any], **overrides: Any) -> tuple[AdminStats, str]:
            settings = make_settings(tmp_path, **{**backend, **overrides})
            await prepare_database(settings.database_url)
            stats = AdminStats(settings)
            addr = await stack.enter_async_context(serve(starlette_host(stats), **uvicorn))
            return stats, addr

        yield _start
