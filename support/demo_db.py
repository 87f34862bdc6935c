"""The default schema with a few rows, the data every test and benchmark server starts with."""

from __future__ import annotations

from datetime import timedelta

from databases import Database

from asgi_adminstats import create_default_schema
from asgi_adminstats.db import statement, utcnow_naive

__all__ = ["prepare_database"]


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
