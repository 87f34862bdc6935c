"""The healing bus backends against real Redis and PostgreSQL servers."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from broadcaster import Broadcast

from asgi_adminstats import PayloadTooLarge, Settings, SettingsError
from asgi_adminstats.bus import Bus, BusStatus, create_broadcast, masked_url
from asgi_adminstats.bus._postgres import PostgresBackend
from asgi_adminstats.bus._redis import RedisBackend

from helpers import services

pytestmark = pytest.mark.engines
SECRET = "s" * 32


def _options(**kwargs: Any) -> dict[str, Any]:
    return {
        "status": BusStatus(kwargs.pop("engine", "redis")),
        "backoff_initial": 0.1,
        "backoff_max": 0.5,
        **kwargs,
    }


async def _until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _roundtrip(broadcast: Broadcast, channel: str, message: str) -> str:
    async with broadcast.subscribe(channel) as subscriber:
        await broadcast.publish(channel, message)
        event = await asyncio.wait_for(subscriber.get(), 3)
    return str(event.message)


async def test_redis_subscribe_then_publish_delivers() -> None:
    """The trap of broadcaster 0.3.1 with redis-py 8: this is what must never regress."""
    services.require("redis")
    broadcast = Broadcast(backend=RedisBackend(services.REDIS_URL, **_options()))
    await broadcast.connect()
    try:
        assert await _roundtrip(broadcast, "t_roundtrip", "hello") == "hello"
        # Several channels subscribed at once (as the component does) all deliver.
        assert await asyncio.gather(
            *(_roundtrip(broadcast, f"t_many_{i}", str(i)) for i in range(3))
        ) == ["0", "1", "2"]
    finally:
        await broadcast.disconnect()


async def test_postgres_subscribe_then_publish_delivers() -> None:
    async with services.fresh_postgres_database() as url:
        backend = PostgresBackend(url, application_name="t", **_options(engine="postgresql"))
        broadcast = Broadcast(backend=backend)
        await broadcast.connect()
        try:
            assert await _roundtrip(broadcast, "t_roundtrip", "hello") == "hello"
            # Publishes from many tasks at once: each gets its own pooled connection.
            async with broadcast.subscribe("t_many") as subscriber:
                await asyncio.gather(*(broadcast.publish("t_many", str(i)) for i in range(20)))
                got = {(await asyncio.wait_for(subscriber.get(), 3)).message for _ in range(20)}
            assert got == {str(i) for i in range(20)}
        finally:
            await broadcast.disconnect()


@contextlib.asynccontextmanager
async def redis_server(port: int, tmp_path: Path) -> AsyncIterator[subprocess.Popen[bytes]]:
    """A Redis of our own on ``port``: the machine's shared one is never restarted."""
    proc = subprocess.Popen(  # noqa: ASYNC220 - returns at once; the wait below is async
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not services.reachable("127.0.0.1", port):
            assert time.monotonic() < deadline and proc.poll() is None, "redis-server failed"
            await asyncio.sleep(0.05)
        yield proc
    finally:
        proc.kill()
        proc.wait(10)


async def test_redis_restart_heals_and_resubscribes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    services.require("redis")
    if not services.has_command("redis-server"):
        pytest.skip("redis-server is not installed: apt-get install redis-server")
    port = services.free_port()
    url = f"redis://127.0.0.1:{port}/0"
    ups: list[int] = []
    downs: list[int] = []
    async with redis_server(port, tmp_path) as first:
        backend = RedisBackend(url, **_options())
        backend.on_down(lambda: _append(downs))
        backend.on_reconnect(lambda: _append(ups))
        broadcast = Broadcast(backend=backend)
        await broadcast.connect()
        try:
            async with broadcast.subscribe("t_heal") as subscriber:
                first.kill()
                first.wait(10)
                await _until(lambda: not backend.status.up)
                with pytest.raises(Exception):  # noqa: B017 - any error: the server is gone
                    await broadcast.publish("t_heal", "lost")
                async with redis_server(port, tmp_path):
                    await _until(lambda: backend.status.up)
                    await broadcast.publish("t_heal", "after")
                    event = await asyncio.wait_for(subscriber.get(), 3)
                    seen = (backend.status.reconnects, len(downs), len(ups))
        finally:
            await broadcast.disconnect()
    assert event.message == "after"  # resubscribed without a restart of the app
    assert seen == (1, 1, 1)
    assert "bus (redis) reconnected after" in caplog.text


async def test_postgres_terminated_listener_heals() -> None:
    async with services.fresh_postgres_database() as url:
        backend = PostgresBackend(
            url, application_name="t-listener", **_options(engine="postgresql")
        )
        broadcast = Broadcast(backend=backend)
        await broadcast.connect()
        admin = await asyncpg.connect(url)
        try:
            async with broadcast.subscribe("t_heal") as subscriber:
                killed = await admin.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name = 't-listener'"
                )
                assert killed == 1
                await _until(lambda: backend.status.reconnects == 1)
                await broadcast.publish("t_heal", "after")
                event = await asyncio.wait_for(subscriber.get(), 3)
        finally:
            await admin.close()
            await broadcast.disconnect()
    assert event.message == "after"
    assert backend.status.up and backend.status.reconnects == 1


async def _append(items: list[int]) -> None:
    items.append(1)


async def test_bounded_queue_drops_oldest() -> None:
    backend = RedisBackend("redis://127.0.0.1:1/0", **_options())
    for i in range(1005):
        backend._deliver("c", str(i))
    assert backend._queue.qsize() == 1000
    assert (await backend.next_published()).message == "5"


@pytest.mark.parametrize("engine", ["redis", "postgresql"])
async def test_unreachable_bus_fails_startup_naming_the_setting(
    tmp_path: Path, engine: str
) -> None:
    from asgi_adminstats import AdminStats, StartupError

    url = {
        "redis": "redis://:s3cret@127.0.0.1:1/0",
        "postgresql": "postgresql://admin:s3cret@127.0.0.1:1/db",
    }[engine]
    stats = AdminStats(
        Settings(
            jwt_secret=SECRET, broadcast_url=url, database_url=f"sqlite:///{tmp_path / 'x.db'}"
        )
    )
    with pytest.raises(StartupError) as err:
        await stats.startup()
    assert "setting 'broadcast_url'" in str(err.value)
    assert "s3cret" not in str(err.value) and "********" in str(err.value)


def test_missing_driver_names_the_setting_and_extra() -> None:
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from asgi_adminstats import Settings\n"
        "from asgi_adminstats.bus import create_broadcast\n"
        "create_broadcast(Settings(jwt_secret='s' * 32, broadcast_url='redis://h:1/0'))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=30
    )
    assert (
        "SettingsError: setting 'broadcast_url' (redis://h:1/0) needs the redis driver"
        in result.stderr
    )
    assert "pip install 'asgi-adminstats[redis]'" in result.stderr


def test_masked_url() -> None:
    assert masked_url("redis://u:pw@h:1/0") == "redis://u:********@h:1/0"
    assert masked_url("postgresql://h/db") == "postgresql://h/db"


async def test_postgres_payload_guard_matches_notify_limit() -> None:
    async with services.fresh_postgres_database() as url:
        settings = Settings(jwt_secret=SECRET, broadcast_url=url, channel_prefix="t")
        broadcast, _, _ = create_broadcast(settings)
        bus = Bus(broadcast, engine="postgresql", prefix="t", owned=True)
        received: list[str] = []
        bus.on("big", received.append)
        await bus.start()
        try:
            await bus.publish("big", "x" * 7999)  # PostgreSQL takes this one...
            with pytest.raises(PayloadTooLarge, match="at most 7999"):
                await bus.publish("big", "x" * 8000)  # ...and would refuse this one
            await _until(lambda: bool(received), timeout=3)
        finally:
            await bus.stop()
    assert received == ["x" * 7999]


def test_unknown_bus_scheme_is_a_setting_error() -> None:
    with pytest.raises(SettingsError, match="broadcast_url"):
        Settings(jwt_secret=SECRET, broadcast_url="kafka://h:1")
