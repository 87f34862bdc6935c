"""The audit watcher: rows another process writes into SQLite reach dashboards, once.

Real uvicorn servers, real WebSocket clients, and a writer in another process (the
sqlite3 module, as the sqlite3 shell or a cron job would write). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asgi_adminstats import AdminStats, Settings, SettingsError

from helpers import services
from helpers.audit_trigger import (
    audit_through_sentinel,
    audit_until,
    ids_from_writer,
    polls_after_now,
    until,
)
from helpers.cluster import RedisServer
from support.demo_db import prepare_database
from support.loopback import client, make_settings, recv, recv_type, serve, starlette_host, token

WATCH = 0.1  # audit_watch_interval here: short, the waits are bounded by counts anyway

_WRITER = """
import datetime, json, sqlite3, sys
db = sqlite3.connect(sys.argv[1], timeout=10)
ids = []
for i in range(int(sys.argv[2])):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cursor = db.execute(
        "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
        " VALUES ('EXTERNAL_EDIT', 'sqlite-shell', 'PLAYER', ?, ?)",
        (str(i), now.isoformat(" ")),
    )
    db.commit()
    ids.append(str(cursor.lastrowid))
print(json.dumps(ids))
"""


def _path(stats: AdminStats) -> str:
    return stats.settings.database_url.removeprefix("sqlite:///")


async def write_in_another_process(path: str, n: int) -> list[str]:
    """Insert ``n`` rows (one commit each) into SQLite from a new Python process; their ids."""
    return await ids_from_writer(_WRITER, path, n)


async def start_sqlite(start: Any, tmp_path: Path, **overrides: Any) -> tuple[AdminStats, str]:
    values = {"broadcast_url": "memory://", "database_url": f"sqlite:///{tmp_path / 'w.db'}"}
    stats: AdminStats
    stats, addr = await start(**{**values, "audit_watch_interval": WATCH, **overrides})
    return stats, addr


@pytest.mark.parametrize("rows", [3, 50], ids=["a-few", "a-burst"])
async def test_rows_from_another_process_reach_a_client_in_order_once(
    start: Any, tmp_path: Path, rows: int
) -> None:
    stats, addr = await start_sqlite(start, tmp_path)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        written = await write_in_another_process(_path(stats), rows)
        got, sentinel = await audit_through_sentinel(stats, ws)
    assert got == [*written, sentinel]
    assert stats.feed.watcher.published == rows


async def test_mixed_with_record_action_each_row_once(start: Any, tmp_path: Path) -> None:
    stats, addr = await start_sqlite(start, tmp_path)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        writer = asyncio.create_task(write_in_another_process(_path(stats), 20))
        recorded = []
        for i in range(20):
            recorded.append((await stats.record_action("BAN_PLAYER", "alice", "PLAYER", i))["id"])
            await asyncio.sleep(WATCH / 4)  # interleave with the writer and the polls
        written = await writer
        got, sentinel = await audit_through_sentinel(stats, ws)
    counts = collections.Counter(got)
    assert set(counts) == {*written, *recorded, sentinel}
    assert set(counts.values()) == {1}
    # The watcher published the other process's rows, not record_action's.
    assert stats.feed.watcher.published == len(written)


async def test_off_at_zero_nothing_from_other_writers_is_pushed(start: Any, tmp_path: Path) -> None:
    stats, addr = await start_sqlite(start, tmp_path, audit_watch_interval=0, stats_interval=0.1)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await write_in_another_process(_path(stats), 3)
        for _ in range(3):  # the producer ticks on; the rows are in no push
            await recv_type(ws, "stats_update")
        sentinel = await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1)
        got = await audit_until(ws, sentinel["id"])
    assert got == [sentinel["id"]]
    assert stats.producer.leading
    assert not stats.feed.watcher.running
    assert stats.feed.watcher.queries == 0


async def test_a_bus_outage_is_left_to_the_replay(start: Any, tmp_path: Path) -> None:
    stats, addr = await start_sqlite(start, tmp_path, stats_interval=0.1)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await stats.feed.bus_down()  # as the healing backend calls it
        written = await write_in_another_process(_path(stats), 3)
        for _ in range(5):  # several watcher intervals pass during the outage
            await recv_type(ws, "stats_update")
        await stats.feed.bus_up()
        sentinel = await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1)
        messages = []
        for _ in range(100):
            messages.append(await recv_type(ws, "audit_action", timeout=10))
            if messages[-1]["data"]["id"] == sentinel["id"]:
                break
        await polls_after_now(stats)
        # The replay reached this instance's clients only: the producer's watcher puts
        # those rows on the bus for the others (whose replays ran at other moments),
        # and this client does not get them twice.
        assert stats.feed.watcher.published == 3
    assert [m["data"]["id"] for m in messages] == [*written, sentinel["id"]]
    assert [m["data"].get("replayed") for m in messages] == [True, True, True, None]


async def execute_in_another_process(path: str, sql: str) -> None:
    code = "import sqlite3, sys; db = sqlite3.connect(sys.argv[1], timeout=10)"
    code += "; db.execute(sys.argv[2]); db.commit()"
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, path, sql)
    assert await asyncio.wait_for(proc.wait(), 60) == 0


async def test_a_failing_query_warns_once_and_is_retried(
    start: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    stats, addr = await start_sqlite(start, tmp_path)
    path = _path(stats)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        with caplog.at_level(logging.WARNING, logger="asgi_adminstats.audit"):
            await execute_in_another_process(path, "ALTER TABLE audit_log RENAME TO audit_away")
            await polls_after_now(stats, 4)  # failed queries count too: the task lives on
            await execute_in_another_process(path, "ALTER TABLE audit_away RENAME TO audit_log")
        warnings = [r for r in caplog.records if "watching the audit table" in r.getMessage()]
        assert len(warnings) == 1
        assert "audit_log" in warnings[0].getMessage()  # no such table: audit_log
        assert stats.feed.watcher.running
        written = await write_in_another_process(path, 2)
        got, sentinel = await audit_through_sentinel(stats, ws)
    assert got == [*written, sentinel]


async def test_only_the_producer_queries_and_a_takeover_resumes(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    try:
        common = {
            "broadcast_url": redis.url,
            "channel_prefix": f"w{uuid.uuid4().hex[:8]}",
            # The lease lasts 1.5 ticks: at 0.2 s a loaded CI machine once let it lapse
            # and B led for a moment; the takeover below is waited for, not timed.
            "stats_interval": 0.5,
            "audit_watch_interval": WATCH,
        }
        a, b = (
            AdminStats(make_settings(tmp_path, instance_name=name, **common))
            for name in ("watch-a", "watch-b")
        )
        await prepare_database(a.settings.database_url)
        async with contextlib.AsyncExitStack() as keep_b:
            async with contextlib.AsyncExitStack() as keep_a:
                await keep_a.enter_async_context(serve(starlette_host(a)))  # first: it leads
                addr_b = await keep_b.enter_async_context(serve(starlette_host(b)))
                assert a.producer.leading
                async with client(f"ws://{addr_b}/admin/ws", tok=token()) as ws:
                    await recv(ws)
                    written = await write_in_another_process(_path(a), 3)
                    await polls_after_now(a)
                    sentinel = await a.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1)
                    # Through A's watcher and the Redis bus to B's client.
                    assert await audit_until(ws, sentinel["id"]) == [*written, sentinel["id"]]
                    assert not b.producer.leading
                    assert b.feed.watcher.queries == 0
                    assert not b.feed.watcher.running
            # A stopped: B takes over within the lease's 1.5 ticks and watches from its feed.
            await until(lambda: b.producer.leading, "B taking over", timeout=15)
            async with client(f"ws://{addr_b}/admin/ws", tok=token()) as ws:
                await recv(ws)
                written = await write_in_another_process(_path(b), 2)
                await polls_after_now(b)
                sentinel = await b.record_action("UNBAN_PLAYER", "alice", "PLAYER", 2)
                assert await audit_until(ws, sentinel["id"]) == [*written, sentinel["id"]]
    finally:
        redis.kill()


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database, dropped after the server (a later fixture) stopped."""
    async with services.fresh_postgres_database() as url:
        yield url


async def test_an_id_committed_after_a_higher_one_still_arrives_once(
    postgres_url: str, start: Any
) -> None:
    # Out-of-order commits need concurrent writers: PostgreSQL without its trigger (memory
    # bus), as MySQL behaves. The watcher sees id N+1 first and keeps N open as a gap.
    url = postgres_url
    stats, addr = await start(
        broadcast_url="memory://", database_url=url, audit_watch_interval=WATCH
    )
    assert not stats.feed.trigger.pushes
    sql = (
        "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
        " VALUES ('EXTERNAL_EDIT', 'psql', 'PLAYER', '1', now() at time zone 'utc')"
        " RETURNING id"
    )
    slow, fast = await asyncpg.connect(url), await asyncpg.connect(url)
    try:
        async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
            await recv(ws)
            held = slow.transaction()
            await held.start()
            low = str(await slow.fetchval(sql))  # id N, not committed yet
            high = str(await fast.fetchval(sql))  # id N+1, committed at once
            assert int(high) == int(low) + 1
            assert await audit_until(ws, high) == [high]
            await polls_after_now(stats)  # N stays open while it polls on
            await held.commit()
            got, sentinel = await audit_through_sentinel(stats, ws)
    finally:
        await slow.close()
        await fast.close()
    assert got == [low, sentinel]


@pytest.mark.parametrize("value", [-1.0, 0.01, 61.0, float("nan")])
def test_the_interval_is_bounded_and_named(tmp_path: Path, value: float) -> None:
    with pytest.raises(SettingsError, match="audit_watch_interval") as caught:
        make_settings(tmp_path, audit_watch_interval=value)
    assert caught.value.setting == "audit_watch_interval"


def test_the_interval_comes_from_the_environment(tmp_path: Path) -> None:
    env = {"ADMINSTATS_JWT_SECRET": "s" * 32, "ADMINSTATS_AUDIT_WATCH_INTERVAL": "0"}
    assert Settings.from_env(env).audit_watch_interval == 0
    assert (
        Settings.from_env({**env, "ADMINSTATS_AUDIT_WATCH_INTERVAL": "2"}).audit_watch_interval == 2
    )
    with pytest.raises(SettingsError, match="ADMINSTATS_AUDIT_WATCH_INTERVAL"):
        Settings.from_env({**env, "ADMINSTATS_AUDIT_WATCH_INTERVAL": "120"})
    assert Settings(jwt_secret="s" * 32).audit_watch_interval == 0.5
