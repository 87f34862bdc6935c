"""MySQL/MariaDB as the host's database, through an AsyncEngine (``mysql+aiomysql://``) and
a ``databases.Database("mysql://...")``: the default schema, ``record_action`` ids, the
default queries, ``adminstats init-db``, and the audit watcher delivering rows that
another process writes (plain SQL, committed in any order) to a real WebSocket client
of a real uvicorn server, once each. Each test has a database of its own.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiomysql  # type: ignore[import-untyped]
import pytest

from asgi_adminstats import AdminStats, create_default_schema
from asgi_adminstats.audit import AuditLog
from asgi_adminstats.db import Queries, async_url, open_database, statement

from helpers import services
from helpers.audit_trigger import (
    audit_through_sentinel,
    audit_until,
    ids_from_writer,
    init_db,
    polls_after_now,
)
from support.demo_db import DATABASE_APIS, host_database, prepare_database
from support.loopback import client, make_settings, recv, recv_type, serve, starlette_host, token

pytestmark = pytest.mark.engines

WATCH = 0.1  # audit_watch_interval here: short, the waits are bounded by counts anyway

# pymysql (aiomysql's dependency), as the mysql client or another service would write.
_WRITER = """
import datetime, json, sys
from urllib.parse import urlsplit
import pymysql
url = urlsplit(sys.argv[1])
db = pymysql.connect(host=url.hostname, port=url.port or 3306, user=url.username,
                     password=url.password or "", database=url.path.lstrip("/"))
ids = []
with db.cursor() as cursor:
    for i in range(int(sys.argv[2])):
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        cursor.execute(
            "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
            " VALUES ('EXTERNAL_EDIT', 'mysql-client', 'PLAYER', %s, %s)", (str(i), now))
        db.commit()
        ids.append(str(cursor.lastrowid))
db.close()
print(json.dumps(ids))
"""

_INSERT = (
    "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
    " VALUES ('EXTERNAL_EDIT', 'mysql-client', 'PLAYER', '1', UTC_TIMESTAMP(6))"
)


@pytest.fixture
async def mysql_url() -> AsyncIterator[str]:
    """A fresh database, dropped after the server (started inside the test) stopped."""
    async with services.fresh_mysql_database() as url:
        yield url


@contextlib.asynccontextmanager
async def served(
    url: str, api: str, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[AdminStats, str]]:
    """One AdminStats on the memory bus and the host's MySQL handle, under uvicorn."""
    values = {"broadcast_url": "memory://", "audit_watch_interval": WATCH}
    settings = make_settings(tmp_path, database_url=url, **{**values, **overrides})
    await prepare_database(url)
    async with host_database(url, api) as database:
        stats = AdminStats(settings, database=database)
        async with serve(starlette_host(stats)) as addr:
            yield stats, addr


@contextlib.asynccontextmanager
async def connection(url: str) -> AsyncIterator[Any]:
    """A plain aiomysql connection (autocommit off), as another service holds one."""
    parts = urlsplit(url)
    conn = await aiomysql.connect(
        host=parts.hostname,
        port=parts.port or 3306,
        user=parts.username,
        password=parts.password or "",
        db=parts.path.lstrip("/"),
    )
    try:
        yield conn
    finally:
        conn.close()


async def insert(conn: Any) -> str:
    async with conn.cursor() as cursor:
        await cursor.execute(_INSERT)
        return str(cursor.lastrowid)


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_the_default_schema_is_created_twice(api: str, mysql_url: str) -> None:
    async with host_database(mysql_url, api) as host:
        db = open_database(host)
        assert db.dialect == "mysql"
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # aiomysql warns on "already exists" notes
            for _ in range(2):
                await create_default_schema(host)
        where = " WHERE table_schema = DATABASE()"
        tables = await db.fetch_all("SELECT table_name AS t FROM information_schema.tables" + where)
        indexes = await db.fetch_all(
            "SELECT index_name AS i FROM information_schema.statistics"
            + where
            + " AND index_name LIKE '%\\_last\\_%'"
        )
        columns = await db.fetch_all(
            "SELECT column_name AS c, data_type AS d, extra AS e FROM information_schema.columns"
            + where
            + " AND table_name = 'audit_log' AND column_name IN ('id', 'created_at')"
        )
    assert sorted(r["t"] for r in tables) == [
        "audit_log",
        "players",
        "sessions",
        "users",
        "villages",
    ]
    assert sorted(r["i"] for r in indexes) == ["players_last_active", "sessions_last_seen"]
    described = {r["c"]: (r["d"], r["e"]) for r in columns}
    assert described == {"id": ("bigint", "auto_increment"), "created_at": ("datetime", "")}


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_record_action_ids_and_the_stats_come_from_mysql(
    api: str, mysql_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # install_audit_trigger is on, as in the sample app: on MySQL it is not attempted.
    settings = {"install_audit_trigger": True, "stats_interval": 0.2}
    async with served(mysql_url, api, tmp_path, **settings) as (stats, addr):
        assert not stats.feed.trigger.installed and stats.feed.watcher.running
        async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
            await recv(ws)
            snapshot = (await recv_type(ws, "stats_update"))["data"]
            first = await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
            second = await stats.record_action("KICK_PLAYER", "alice", "PLAYER", 2)
            async with stats.audit_transaction() as audit:
                third = await audit.record_action("UNBAN_PLAYER", "alice", "PLAYER", 3)
            assert await audit_until(ws, third["id"]) == [first["id"], second["id"], third["id"]]
            stored = await stats.audit.get(second["id"])
            for _ in range(50):  # recentActions: the default query's bound LIMIT
                latest = (await recv_type(ws, "stats_update"))["data"]
                if latest["activity"]["recentActions"][:1] == [third]:
                    break
    assert [int(a["id"]) for a in (first, second, third)] == [1, 2, 3]
    assert stored == second  # microseconds kept (DATETIME(6)), read back as UTC
    moment = datetime.fromisoformat(second["timestamp"].replace("Z", "+00:00"))
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=1)
    assert latest["activity"]["recentActions"][:3] == [third, second, first]
    assert snapshot["online"]["users"] == 2
    assert snapshot["totals"] == {"players": 3, "villages": 2}
    assert snapshot["system"]["database"]["status"] in ("healthy", "degraded")
    assert not [r for r in caplog.records if r.levelno >= 30 and "trigger" in r.getMessage()]


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_rows_from_another_process_reach_a_client_in_order_once(
    api: str, mysql_url: str, tmp_path: Path
) -> None:
    async with served(mysql_url, api, tmp_path) as (stats, addr):
        async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
            await recv(ws)
            written = await ids_from_writer(_WRITER, mysql_url, 30)
            got, sentinel = await audit_through_sentinel(stats, ws)
        assert got == [*written, sentinel]
        assert stats.feed.watcher.published == len(written)


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_mixed_with_record_action_each_row_once(
    api: str, mysql_url: str, tmp_path: Path
) -> None:
    async with served(mysql_url, api, tmp_path) as (stats, addr):
        async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
            await recv(ws)
            proc = ids_from_writer(_WRITER, mysql_url, 20)
            writer = asyncio.ensure_future(proc)
            recorded = [
                (await stats.record_action("BAN_PLAYER", "alice", "PLAYER", i))["id"]
                for i in range(20)
            ]
            written = await writer
            got, sentinel = await audit_through_sentinel(stats, ws)
        counts = collections.Counter(got)
        assert set(counts) == {*written, *recorded, sentinel}
        assert set(counts.values()) == {1}
        # The other process's rows, and perhaps a record_action id read between its
        # commit and its publish (a second copy on the bus that the feed drops).
        assert len(written) <= stats.feed.watcher.published < len(written) + len(recorded)


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_an_id_committed_after_a_higher_one_still_arrives_once(
    api: str, mysql_url: str, tmp_path: Path
) -> None:
    # InnoDB hands out ids at insert time: a transaction holding id N that commits after
    # N+1 leaves a gap the watcher keeps open until N shows up.
    async with (
        served(mysql_url, api, tmp_path) as (stats, addr),
        connection(mysql_url) as slow,
        connection(mysql_url) as fast,
        client(f"ws://{addr}/admin/ws", tok=token()) as ws,
    ):
        await recv(ws)
        await slow.begin()
        low = await insert(slow)  # id N, not committed yet
        high = await insert(fast)
        await fast.commit()  # id N+1, committed at once
        assert int(high) == int(low) + 1
        assert await audit_until(ws, high) == [high]
        await polls_after_now(stats)  # N stays open while it polls on
        await slow.commit()
        got, sentinel = await audit_through_sentinel(stats, ws)
    assert got == [low, sentinel]


@pytest.mark.parametrize("scheme", ["mysql", "mariadb", "mysql+aiomysql"])
async def test_a_database_url_owns_an_aiomysql_engine(scheme: str, mysql_url: str) -> None:
    url = scheme + "://" + mysql_url.partition("://")[2]
    assert async_url(url).startswith(("mysql+aiomysql://", "mariadb+aiomysql://"))
    db = open_database(url)  # database_url: an engine made and owned by the component
    await db.connect()
    try:
        assert db.owned and db.dialect == "mysql"  # MariaDB's dialect runs the same SQL
        await create_default_schema(db)
        log = AuditLog(db, Queries())
        ids = [(await log.insert("BAN_PLAYER", "alice", "PLAYER", i))["id"] for i in range(2)]
        assert ids == ["1", "2"] and await log.max_id() == 2
    finally:
        await db.disconnect()


async def test_init_db_makes_the_tables_and_says_there_is_no_trigger(mysql_url: str) -> None:
    for _ in range(2):
        result = init_db("--database-url", mysql_url, "--default-schema")
        assert result.returncode == 0, result.stderr
    assert "default schema: ready" in result.stdout
    assert "audit trigger: PostgreSQL only, none on mysql" in result.stdout
    async with host_database(mysql_url) as host:
        count = await open_database(host).fetch_val(
            statement(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE()"
            )
        )
    assert count == 5
    result = init_db("--database-url", mysql_url)  # the trigger alone: nothing it can do
    assert result.returncode == 1 and "needs PostgreSQL" in result.stderr
