"""The default schema and the PostgreSQL audit trigger (``adminstats init-db``)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from asgi_adminstats import AdminStats, create_default_schema, install_audit_trigger
from asgi_adminstats.audit import audit_trigger_installed
from asgi_adminstats.db import open_database

from helpers import services
from helpers.audit_trigger import init_db
from support.demo_db import DATABASE_APIS, host_database, prepare_database
from support.loopback import client, make_settings, recv, recv_type, serve, starlette_host, token

pytestmark = pytest.mark.engines


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_init_db_is_idempotent_and_installs_the_trigger(api: str) -> None:
    async with services.fresh_postgres_database() as url:
        for _ in range(2):
            result = init_db("--database-url", url, "--prefix", "game", "--default-schema")
            assert result.returncode == 0, result.stderr
        assert "audit trigger game_audit_notify on audit_log: installed" in result.stdout
        async with host_database(url, api) as db:
            assert await audit_trigger_installed(db, prefix="game", table="audit_log")
            assert not await audit_trigger_installed(db, prefix="other", table="audit_log")


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_trigger_notifies_only_the_id_after_commit(api: str) -> None:
    async with (
        services.fresh_postgres_database() as url,
        host_database(url, api) as db,
    ):
        listener = await asyncpg.connect(url)
        got: list[str] = []
        try:
            await create_default_schema(db)
            await install_audit_trigger(db, prefix="t", table="audit_log")
            await listener.add_listener("t_audit", lambda *args: got.append(args[3]))
            writer = await asyncpg.connect(url)
            try:
                async with writer.transaction():
                    new_id = await writer.fetchval(
                        "INSERT INTO audit_log (action, admin, target_type, details, created_at)"
                        " VALUES ('BAN_PLAYER', 'psql', 'PLAYER', 'secret', now()) RETURNING id"
                    )
                    await listener.fetchval("SELECT 1")  # let a premature NOTIFY arrive
                    assert got == []  # nothing before the commit
            finally:
                await writer.close()
            for _ in range(100):
                if got:
                    break
                await listener.fetchval("SELECT pg_sleep(0.01)")
        finally:
            await listener.close()
    assert got == [str(new_id)]


def test_init_db_errors() -> None:
    result = init_db("--database-url", "sqlite:///x.db")
    assert result.returncode == 1 and "needs PostgreSQL" in result.stderr
    result = init_db("--database-url", "postgresql://h/db", "--prefix", "Bad-Name")
    assert (
        result.returncode == 2 and "--prefix must be a lower-case SQL identifier" in result.stderr
    )


async def test_rows_from_any_writer_reach_dashboards_once(tmp_path: Path) -> None:
    async with services.fresh_postgres_database() as url:
        settings = make_settings(tmp_path, database_url=url, broadcast_url=url, channel_prefix="tr")
        await prepare_database(url)
        stats = AdminStats(settings)
        async with serve(starlette_host(stats)) as addr:
            assert not stats.feed.trigger.pushes
            await stats.install_audit_trigger()  # switches to trigger pushes at once
            assert stats.feed.trigger.pushes
            async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
                await recv(ws)
                writer = await asyncpg.connect(url)
                try:
                    sql_id = await writer.fetchval(
                        "INSERT INTO audit_log (action, admin, target_type, created_at)"
                        " VALUES ('WORLD_CONFIG_CHANGE', 'migration', 'WORLD', now()) RETURNING id"
                    )
                finally:
                    await writer.close()
                from_sql = await recv_type(ws, "audit_action", timeout=2)
                recorded = await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 3)
                from_api = await recv_type(ws, "audit_action", timeout=2)
                extra: list[Any] = []
                with contextlib.suppress(TimeoutError):
                    extra.append(await recv_type(ws, "audit_action", timeout=0.5))
    assert from_sql["data"]["id"] == str(sql_id)
    assert from_sql["data"]["admin"] == "migration"
    assert from_api["data"] == recorded
    assert extra == []  # trigger and record_action never both push one action
    assert "details" not in json.dumps(from_sql)


@pytest.mark.parametrize("api", DATABASE_APIS)
async def test_default_schema_widens_an_older_admin_column_on_postgresql(api: str) -> None:
    async with services.fresh_postgres_database() as url, host_database(url, api) as host:
        db = open_database(host)
        # The audit table as earlier releases made it: 128-character admin names.
        await db.execute(
            "CREATE TABLE audit_log (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,"
            " action VARCHAR(64) NOT NULL, admin VARCHAR(128) NOT NULL,"
            " target_type VARCHAR(64) NOT NULL, target_id VARCHAR(128), details TEXT,"
            " ip_address VARCHAR(64), created_at TIMESTAMP NOT NULL)"
        )
        await db.execute(
            "INSERT INTO audit_log (action, admin, target_type, created_at)"
            " VALUES ('BAN_PLAYER', 'kept', 'PLAYER', now())"
        )
        for _ in range(2):  # idempotent
            await create_default_schema(db)
        length = await db.fetch_val(
            "SELECT character_maximum_length FROM information_schema.columns"
            " WHERE table_name = 'audit_log' AND column_name = 'admin'"
        )
        await db.execute(
            "INSERT INTO audit_log (action, admin, target_type, created_at)"
            f" VALUES ('BAN_PLAYER', '{'a' * 255}', 'PLAYER', now())"
        )
        rows = await db.fetch_all("SELECT admin FROM audit_log ORDER BY id")
        admins = [row["admin"] for row in rows]
    assert length == 255
    assert admins == ["kept", "a" * 255]
