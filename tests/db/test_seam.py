"""The database seam: an AsyncEngine (the primary form) and a databases.Database behave
alike on SQLite and on PostgreSQL; who owns what; audit_transaction on an engine."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from asgi_adminstats import AdminStats, StartupError, create_default_schema
from asgi_adminstats.db import async_url, is_postgres, open_database, statement, utcnow_naive

from helpers import services
from support.demo_db import DATABASE_APIS, host_database, prepare_database
from support.loopback import make_settings

pytestmark = pytest.mark.engines


@contextlib.asynccontextmanager
async def database_url(dialect: str, tmp_path: Path) -> AsyncIterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'seam.db'}"
    else:
        async with services.fresh_postgres_database() as url:
            yield url


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_both_forms_run_the_same_statements(api: str, dialect: str, tmp_path: Path) -> None:
    async with database_url(dialect, tmp_path) as url, host_database(url, api) as host:
        db = open_database(host)
        assert db.host is host and not db.owned
        assert db.dialect == dialect and is_postgres(db) == (dialect == "postgresql")
        await create_default_schema(host)
        insert = "INSERT INTO audit_log (action, admin, target_type, created_at)"
        insert += " VALUES (:action, 'alice', 'PLAYER', :t)"
        if dialect == "postgresql":
            insert += " RETURNING id"
        first = await db.execute(statement(insert, action="BAN", t=utcnow_naive()))
        second = await db.execute(statement(insert, action="KICK", t=utcnow_naive()))
        assert (first, second) == (1, 2)  # the new row's id, as the audit insert needs
        assert await db.fetch_val("SELECT COUNT(*) FROM audit_log") == 2
        row = await db.fetch_one(statement("SELECT action FROM audit_log WHERE id = :id", id=2))
        assert row is not None and row["action"] == "KICK"
        assert await db.fetch_one("SELECT action FROM audit_log WHERE id = 99") is None
        rows = await db.fetch_all("SELECT id, action FROM audit_log ORDER BY id")
        assert [dict(r) for r in rows] == [{"id": 1, "action": "BAN"}, {"id": 2, "action": "KICK"}]
        with pytest.raises(RuntimeError, match="rolled back"):
            async with db.transaction():
                await db.execute("DELETE FROM audit_log")
                async with db.transaction():  # nested: the audit insert inside the host's
                    await db.execute(statement(insert, action="GONE", t=utcnow_naive()))
                raise RuntimeError("rolled back")
        assert await db.fetch_val("SELECT COUNT(*) FROM audit_log") == 2


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_the_masked_url_hides_the_password(api: str) -> None:
    url = "postgresql://admin:s3cret@127.0.0.1:5432/game"
    if api == "engine":
        db = open_database(create_async_engine(async_url(url)))
    else:
        from databases import Database

        db = open_database(Database(url))
    assert "s3cret" not in db.masked_url and "127.0.0.1:5432/game" in db.masked_url
    assert (db.url.host, db.url.port, db.url.database) == ("127.0.0.1", 5432, "game")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("postgresql://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgres://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("postgresql+asyncpg://u@h/d", "postgresql+asyncpg://u@h/d"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
        ("mysql://u@h/d", "mysql+aiomysql://u@h/d"),
        ("mariadb://u@h/d", "mariadb+aiomysql://u@h/d"),
        ("mysql+asyncmy://u@h/d", "mysql+asyncmy://u@h/d"),
    ],
)
def test_database_url_gets_an_async_driver(url: str, expected: str) -> None:
    assert async_url(url) == expected


def test_an_unusable_database_url_fails_naming_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, database_url="nosuchdb://admin:s3cret@h/d")
    with pytest.raises(StartupError, match="setting 'database_url'") as err:
        AdminStats(settings)
    assert "s3cret" not in str(err.value) and "nosuchdb://admin:***@h/d" in str(err.value)


def test_anything_else_is_refused() -> None:
    with pytest.raises(TypeError, match=r"AsyncEngine or a databases\.Database"):
        open_database(cast(Any, object()))


async def test_the_host_engine_is_not_disposed_the_owned_one_is(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    owned = AdminStats(settings)
    assert isinstance(owned.database, AsyncEngine)
    async with host_database(settings.database_url) as engine:
        assert isinstance(engine, AsyncEngine)
        hosted = AdminStats(settings, database=engine)
        assert hosted.database is engine
        pools = []
        for stats in (owned, hosted):
            await stats.startup()
            await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
            pools.append(stats.database.pool if isinstance(stats.database, AsyncEngine) else None)
            await stats.shutdown()
        assert owned.database.pool is not pools[0]  # dispose() replaced the pool
        assert engine.pool is pools[1]
        assert await open_database(engine).fetch_val("SELECT COUNT(*) FROM audit_log") == 2


async def test_audit_transaction_runs_the_hosts_statements_on_its_connection(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    async with host_database(settings.database_url) as engine:
        stats = AdminStats(settings, database=engine)
        await stats.startup()
        try:
            ban = text("UPDATE players SET banned = TRUE WHERE id = 1")
            with pytest.raises(LookupError):
                async with stats.audit_transaction() as audit:
                    await audit.connection.execute(ban)
                    await audit.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
                    raise LookupError("the host's own failure")
            banned = "SELECT banned FROM players WHERE id = 1"
            assert not await open_database(engine).fetch_val(banned)
            assert await stats.audit.max_id() == 0
            async with stats.audit_transaction() as audit:
                await audit.connection.execute(ban)
                recorded = await audit.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
                assert audit.connection.in_transaction()
            assert await open_database(engine).fetch_val(banned)
            assert await stats.audit.get(recorded["id"]) == recorded
        finally:
            await stats.shutdown()


async def test_with_databases_the_connection_is_that_database(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    async with host_database(settings.database_url, "databases") as database:
        stats = AdminStats(settings, database=database)
        await stats.startup()
        try:
            async with stats.audit_transaction() as audit:
                with pytest.raises(RuntimeError, match="run your statements on that Database"):
                    audit.connection  # noqa: B018
        finally:
            await stats.shutdown()


def test_databases_is_optional() -> None:
    code = (
        "import sys, asgi_adminstats as a; "
        "a.AdminStats(a.Settings(jwt_secret='x' * 32)); "
        "assert 'databases' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
