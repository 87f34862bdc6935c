"""The PostgreSQL audit trigger on any bus: installed by a setting, heard by the producer.

With the bus elsewhere (Redis, memory) the trigger's NOTIFY reaches no bus: the producer
alone LISTENs on the database and forwards each id, so every client gets every row once.
Real PostgreSQL and Redis, writers in another process (asyncpg, as psql would), real
uvicorn servers and WebSocket clients. Every wait is bounded; nothing is timed.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from asgi_adminstats import AdminStats, Settings, SettingsError, mint_token
from asgi_adminstats.audit import TriggerListener, audit_trigger_installed

from helpers import services
from helpers.audit_trigger import (
    SLOW,
    audit_all,
    audit_until,
    insert_in_another_process,
    listening,
    served,
    trigger_settings,
    until,
)
from support.demo_db import prepare_database
from support.loopback import client, recv, serve, token


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    """A fresh database with the default schema, dropped after the servers stopped."""
    async with services.fresh_postgres_database() as url:
        await prepare_database(url)
        yield url


def redis_pair(tmp_path: Path, url: str, *names: str) -> list[Settings]:
    """Settings of instances sharing Redis and one channel prefix: one cluster."""
    prefix = f"t{uuid.uuid4().hex[:10]}"
    return [
        trigger_settings(
            tmp_path, url, services.REDIS_URL, instance_name=name, channel_prefix=prefix
        )
        for name in names
    ]


async def test_redis_bus_only_the_producer_listens_each_client_gets_each_row_once(
    pg_url: str, tmp_path: Path
) -> None:
    services.require("redis")
    a_settings, b_settings = redis_pair(tmp_path, pg_url, "trig-a", "trig-b")
    prefix = a_settings.channel_prefix
    async with served(a_settings) as (a, addr_a), served(b_settings) as (b, addr_b):
        assert a.producer.leading and not b.producer.leading  # A started first
        assert await audit_trigger_installed(a.database, prefix=prefix)
        assert a.feed.trigger.listens and not a.feed.trigger.pushes
        await until(listening(a), "the producer listening on the database")
        assert b.feed.watcher.listener is None  # one listener per cluster
        async with (
            client(f"ws://{addr_a}/admin/ws", tok=token()) as ws_a,
            client(f"ws://{addr_b}/admin/ws", tok=token()) as ws_b,
        ):
            await recv(ws_a)
            await recv(ws_b)
            written = await insert_in_another_process(pg_url, 5)
            sentinel = (await b.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1))["id"]
            got_a = await audit_all(ws_a, {*written, sentinel})
            got_b = await audit_all(ws_b, {*written, sentinel})
    for got in (got_a, got_b):
        counts = collections.Counter(got)
        assert set(counts) == {*written, sentinel}
        assert set(counts.values()) == {1}
        assert [i for i in got if i in written] == written
    listener = a.feed.watcher.listener
    assert listener is None  # stopped with the producer
    # One query on the producer: the catch-up before its first forward (rows committed
    # before its LISTEN began); no tick's poll on either.
    assert (a.feed.watcher.queries, b.feed.watcher.queries) == (1, 0)


async def test_a_takeover_moves_the_listener_and_rows_keep_arriving(
    pg_url: str, tmp_path: Path
) -> None:
    services.require("redis")
    a_settings, b_settings = redis_pair(tmp_path, pg_url, "take-a", "take-b")
    async with contextlib.AsyncExitStack() as keep_b:
        async with served(a_settings) as (a, _):
            b, addr_b = await keep_b.enter_async_context(served(b_settings))
            assert a.producer.leading and b.feed.watcher.listener is None
        # A stopped: B takes over within the lease's 1.5 ticks and listens in its place.
        await until(listening(b), "B taking over and listening")
        async with client(f"ws://{addr_b}/admin/ws", tok=token()) as ws:
            await recv(ws)
            written = await insert_in_another_process(pg_url, 3)
            assert await audit_until(ws, written[-1]) == written


@pytest.mark.parametrize("interval", [SLOW, 0.1], ids=["listener-only", "with-polls"])
async def test_memory_bus_rows_from_another_process_arrive_once(
    pg_url: str, tmp_path: Path, interval: float
) -> None:
    settings = trigger_settings(tmp_path, pg_url, "memory://", audit_watch_interval=interval)
    async with served(settings) as (stats, addr):
        assert stats.feed.trigger.listens
        await until(listening(stats), "the producer listening on the database")
        listener = stats.feed.watcher.listener
        assert isinstance(listener, TriggerListener)
        async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
            await recv(ws)
            written = await insert_in_another_process(pg_url, 10)
            got = await audit_until(ws, written[-1])
            watcher = stats.feed.watcher  # counts a poll's rows when the poll ends
            await until(lambda: listener.forwarded + watcher.published >= 10, "the counts")
            # Both counted before the push: record_action's own row may be forwarded
            # too, or read by a poll between its commit and its publish.
            forwarded, polled = listener.forwarded, watcher.published
            sentinel = (await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1))["id"]
            assert await audit_until(ws, sentinel) == [sentinel]
        assert got == written  # each once, in order, to the client
        # On the bus a row may go twice: the poll that catches up after the listener
        # (re)connects can read a row the listener forwards too; the feed drops the copy.
        assert forwarded + polled >= len(written)
        if interval == SLOW:  # no tick: the listener, after its one catch-up query
            assert stats.feed.watcher.queries == 1


async def test_a_lost_listener_heals_and_rows_still_arrive_once(
    pg_url: str, tmp_path: Path
) -> None:
    settings = trigger_settings(tmp_path, pg_url, "memory://", audit_watch_interval=0.1)
    async with served(settings) as (stats, addr):
        await until(listening(stats), "the producer listening on the database")
        admin = await asyncpg.connect(pg_url)
        try:
            async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
                await recv(ws)
                killed = await admin.fetchval(
                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name LIKE $1",
                    f"{settings.channel_prefix}-audit-listen%",
                )
                assert killed == 1
                # Polled while it is down, or caught up by the poll after it is back: the
                # reconnect can be quicker than any check of the down state (0.0 s in CI).
                during = await insert_in_another_process(pg_url, 3)
                await until(listening(stats), "the listener back")
                after = await insert_in_another_process(pg_url, 3)
                got = await audit_until(ws, after[-1])
        finally:
            await admin.close()
    assert got == [*during, *after]


async def test_rows_committed_before_the_listen_began_go_out_before_later_ones(
    pg_url: str, tmp_path: Path
) -> None:
    # A watcher too slow to tick within the test: the catch-up runs before the first
    # id the listener forwards, or the row written while it was away comes after it.
    settings = trigger_settings(tmp_path, pg_url, "memory://", audit_watch_interval=SLOW)
    async with served(settings) as (stats, addr):
        await until(listening(stats), "the producer listening on the database")
        admin = await asyncpg.connect(pg_url)
        database = await admin.fetchval("SELECT current_database()")
        # From another database: PostgreSQL refuses it for the connection's own.
        gate = await asyncpg.connect(services.POSTGRES_URL)
        try:
            async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
                await recv(ws)
                # No new connection while the row is written: the listener stays away.
                await gate.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                await admin.fetchval(
                    "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE application_name LIKE $1",
                    f"{settings.channel_prefix}-audit-listen%",
                )
                await until(lambda: not listening(stats)(), "the listener down")
                before = str(
                    await admin.fetchval(
                        "INSERT INTO audit_log (action, admin, target_type, target_id,"
                        " created_at) VALUES ('EXTERNAL_EDIT', 'psql', 'PLAYER', '0',"
                        " now() at time zone 'utc') RETURNING id"
                    )
                )
                await gate.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
                await until(listening(stats), "the listener back")
                after = await insert_in_another_process(pg_url, 2)
                got = await audit_until(ws, after[-1])
        finally:
            await gate.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await gate.close()
            await admin.close()
    assert got == [before, *after]


@pytest.fixture
async def limited_url(pg_url: str) -> AsyncIterator[str]:
    """The fresh database as a role that may read and insert, not create a trigger."""
    role = f"adminstats_r_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg_url)
    try:
        await admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD 'limited'")
        await admin.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
        await admin.execute(f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO {role}")
        await admin.execute(f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO {role}")
    finally:
        await admin.close()
    try:
        yield pg_url.replace("://root@", f"://{role}:limited@", 1)
    finally:
        admin = await asyncpg.connect(pg_url)
        try:
            await admin.execute(f"DROP OWNED BY {role}")
            await admin.execute(f"DROP ROLE {role}")
        finally:
            await admin.close()


async def test_a_role_that_may_not_install_warns_once_and_rows_are_polled(
    pg_url: str, limited_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert limited_url != pg_url  # the test database URL names the superuser root
    settings = trigger_settings(tmp_path, limited_url, "memory://", audit_watch_interval=0.1)
    with caplog.at_level(logging.WARNING, logger="asgi_adminstats"):
        async with served(settings) as (stats, addr):
            prefix = settings.channel_prefix
            assert not await audit_trigger_installed(stats.database, prefix=prefix)
            assert not stats.feed.trigger.listens and stats.feed.watcher.listener is None
            async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
                await recv(ws)
                written = await insert_in_another_process(limited_url, 3)
                assert await audit_until(ws, written[-1]) == written
            assert stats.feed.watcher.published == len(written)
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    message = warnings[0].getMessage()
    assert "adminstats init-db" in message and "--table audit_log" in message
    assert f"--prefix {settings.channel_prefix}" in message


@pytest.mark.parametrize("bus", ["redis", "postgresql"])
async def test_the_sample_app_on_postgresql_pushes_plain_inserts(
    pg_url: str, tmp_path: Path, bus: str
) -> None:
    from sample_app import create_app
    from sample_app.__main__ import load_config

    services.require(bus)
    env = {
        "DATABASE_URL": pg_url,
        "ADMINSTATS_BROADCAST_URL": services.REDIS_URL if bus == "redis" else pg_url,
        "ADMINSTATS_CHANNEL_PREFIX": f"s{uuid.uuid4().hex[:10]}",
    }
    config = load_config("127.0.0.1", 8000, dev=False, environ=env)
    assert config.settings.install_audit_trigger
    app = create_app(config.settings, database_url=config.database_url, simulate=False)
    stats: AdminStats = app.state.stats
    secret = config.settings.jwt_secret
    assert secret is not None
    async with serve(app) as addr:
        assert stats.feed.trigger.installed
        # Who pushes: the trigger's NOTIFY itself on the same PostgreSQL, else the producer.
        assert stats.feed.trigger.pushes == (bus == "postgresql")
        if bus == "redis":
            await until(listening(stats), "the producer listening on the database")
        admin = mint_token(secret, sub="mod-1")
        async with client(f"ws://{addr}/admin/ws", tok=admin, origin=None) as ws:
            await recv(ws)
            written = await insert_in_another_process(pg_url, 2)
            assert await audit_until(ws, written[-1]) == written


def test_the_setting_comes_from_the_environment_and_is_named_in_errors() -> None:
    env = {"ADMINSTATS_JWT_SECRET": "s" * 32}
    assert not Settings.from_env(env).install_audit_trigger
    on = {**env, "ADMINSTATS_INSTALL_AUDIT_TRIGGER": "true"}
    assert Settings.from_env(on).install_audit_trigger
    with pytest.raises(SettingsError, match="ADMINSTATS_INSTALL_AUDIT_TRIGGER") as caught:
        Settings.from_env({**env, "ADMINSTATS_INSTALL_AUDIT_TRIGGER": "maybe"})
    assert caught.value.setting == "install_audit_trigger"
    with pytest.raises(SettingsError, match="install_audit_trigger"):
        Settings(jwt_secret="s" * 32, install_audit_trigger="yes")  # type: ignore[arg-type]
