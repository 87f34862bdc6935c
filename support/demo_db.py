"""The default schema with a few rows, the data every test and benchmark server starts with,
and the host's own database handle in either form AdminStats accepts."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy.ext.asyncio import create_async_engine

from asgi_adminstats import create_default_schema
from asgi_adminstats.db import HostDatabase, async_url, open_database, statement, utcnow_naive

__all__ = ["DATABASE_APIS", "host_database", "prepare_database"]

#: ``AdminStats(database=...)`` forms: a SQLAlchemy AsyncEngine, or a databases.Database.
DATABASE_APIS = ("engine", "databases")


@contextlib.asynccontextmanager
async def host_database(url: str, api: str = "engine") -> AsyncIterator[HostDatabase]:
    """The host's own handle on ``url``, made, connected and closed as a host does."""
    if api == "engine":
        engine = create_async_engine(async_url(url))
        try:
            yield engine
        finally:
            await engine.dispose()
    elif api == "databases":
        from databases import Database  # the optional extra

        database = Database(url)
        await database.connect()
        try:
            yield database
        finally:
            await database.disconnect()
    else:
        raise ValueError(f"database API {api!r}: one of {', '.join(DATABASE_APIS)}")


async def prepare_database(url: str, *, players: int = 3) -> None:
    """The default schema with a few rows: 2 online users, ``players`` players."""
    db = open_database(url)
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
