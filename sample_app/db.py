"""Demo data for the default schema, so a fresh database shows a lively dashboard."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asgi_adminstats import create_default_schema
from asgi_adminstats.db import statement, utcnow_naive

__all__ = ["prepare", "seed"]

_PREPARE_ATTEMPTS = 5

USERS = 500
PLAYERS = 1200
VILLAGES = 2000
SESSIONS = 1000
# Rows per INSERT: SQLite before 3.32 allows 999 bound parameters per statement.
_BATCH = 150

_ADJECTIVES = (
    "brave",
    "swift",
    "silent",
    "iron",
    "golden",
    "wild",
    "frost",
    "ember",
    "shadow",
    "lucky",
    "grim",
    "merry",
    "stone",
    "storm",
    "amber",
    "crimson",
)
_NOUNS = (
    "fox",
    "wolf",
    "raven",
    "bear",
    "falcon",
    "otter",
    "lynx",
    "hare",
    "boar",
    "heron",
    "viper",
    "stag",
    "badger",
    "owl",
    "drake",
    "mole",
)
_TITLES = ("Lord", "Lady", "Baron", "Duchess", "Chief", "Warden", "Sir", "Dame")
_PLACE_HEADS = (
    "Oak",
    "River",
    "Stone",
    "Ash",
    "Elder",
    "Mill",
    "Wolf",
    "Raven",
    "High",
    "Frost",
    "Iron",
    "Green",
    "Black",
    "Fair",
    "Gold",
    "Thorn",
)
_PLACE_TAILS = (
    "ford",
    "holm",
    "wick",
    "stead",
    "burg",
    "dale",
    "moor",
    "haven",
    "field",
    "gate",
    "reach",
    "watch",
)
_ADMINS = ("alice.admin", "bob.moderator", "carol.ops", "dave.gamemaster")
_BAN_REASONS = ("multi-accounting", "bot farming", "chat abuse", "payment fraud")


async def _insert(
    db: AsyncConnection, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Multi-row INSERTs: one round trip per batch instead of per row (portable SQL)."""
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        values: dict[str, Any] = {}
        tuples = []
        for i, row in enumerate(batch):
            tuples.append("(" + ", ".join(f":{c}_{i}" for c in columns) + ")")
            values.update({f"{c}_{i}": row[c] for c in columns})
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join(tuples)}"
        await db.execute(statement(sql, **values))


async def _ids(db: AsyncConnection, table: str) -> list[int]:
    # Never assume ids start at 1: a PostgreSQL identity keeps counting after deletes.
    return [int(i) for i in await db.scalars(text(f"SELECT id FROM {table} ORDER BY id"))]


def _before(now: datetime, rng: random.Random, span: timedelta) -> datetime:
    return now - span * rng.random()


async def _users(db: AsyncConnection, rng: random.Random, now: datetime) -> list[int]:
    rows = []
    for i in range(USERS):
        name = f"{rng.choice(_ADJECTIVES)}_{rng.choice(_NOUNS)}{i}"
        rows.append(
            {
                "username": name,
                "email": f"{name}@example.test",
                "created_at": _before(now, rng, timedelta(days=180)),
            }
        )
    await _insert(db, "users", ("username", "email", "created_at"), rows)
    return await _ids(db, "users")


async def _players(
    db: AsyncConnection, rng: random.Random, now: datetime, users: Sequence[int]
) -> list[int]:
    rows = [
        {
            "user_id": rng.choice(users),
            "name": f"{rng.choice(_TITLES)} {rng.choice(_PLACE_HEADS)}{rng.choice(_NOUNS)} {i}",
            "banned": False,
            "last_active_at": _before(now, rng, timedelta(days=3)),
        }
        for i in range(PLAYERS)
    ]
    await _insert(db, "players", ("user_id", "name", "banned", "last_active_at"), rows)
    return await _ids(db, "players")


async def _villages(db: AsyncConnection, rng: random.Random, players: Sequence[int]) -> None:
    rows = [
        {
            "player_id": rng.choice(players),
            "name": f"{rng.choice(_PLACE_HEADS)}{rng.choice(_PLACE_TAILS)}",
        }
        for _ in range(VILLAGES)
    ]
    await _insert(db, "villages", ("player_id", "name"), rows)


async def _sessions(
    db: AsyncConnection, rng: random.Random, now: datetime, users: Sequence[int]
) -> None:
    # Two hours of history: about an eighth falls inside the 15-minute "online" window.
    rows = [
        {"user_id": rng.choice(users), "last_seen_at": _before(now, rng, timedelta(hours=2))}
        for _ in range(SESSIONS)
    ]
    await _insert(db, "sessions", ("user_id", "last_seen_at"), rows)


async def _audit(
    db: AsyncConnection,
    rng: random.Random,
    now: datetime,
    users: Sequence[int],
    players: Sequence[int],
) -> None:
    """Fifteen past actions, oldest first so ids and timestamps agree."""
    banned: dict[int, bool] = {}
    rows = []
    for step in range(15):
        action = rng.choice(
            ("BAN_PLAYER", "BAN_PLAYER", "UNBAN_PLAYER", "WORLD_CONFIG_CHANGE", "RESET_PASSWORD")
        )
        if action == "UNBAN_PLAYER" and not any(banned.values()):
            action = "BAN_PLAYER"
        target_type, target_id, details = "WORLD", "world-1", "speed 1.0 -> 1.5; night bonus on"
        if action == "BAN_PLAYER":
            player = rng.choice(players)
            banned[player] = True
            target_type, target_id = "PLAYER", str(player)
            details = f"reason: {rng.choice(_BAN_REASONS)}; ticket #{rng.randint(1000, 9999)}"
        elif action == "UNBAN_PLAYER":
            player = rng.choice(sorted(p for p, b in banned.items() if b))
            banned[player] = False
            target_type, target_id, details = "PLAYER", str(player), "appeal accepted"
        elif action == "RESET_PASSWORD":
            user = rng.choice(users)
            target_type, target_id = "USER", str(user)
            details = f"requested by user{user}@example.test via support"
        rows.append(
            {
                "action": action,
                "admin": rng.choice(_ADMINS),
                "target_type": target_type,
                "target_id": target_id,
                "details": details,
                "ip_address": f"203.0.113.{rng.randint(1, 254)}",
                "created_at": now - timedelta(hours=48) * (15 - step) / 15,
            }
        )
    await _insert(
        db,
        "audit_log",
        ("action", "admin", "target_type", "target_id", "details", "ip_address", "created_at"),
        rows,
    )
    for player, is_banned in banned.items():
        await db.execute(
            statement(
                "UPDATE players SET banned = :banned WHERE id = :id", banned=is_banned, id=player
            )
        )


async def seed(engine: AsyncEngine) -> bool:
    """Fill an empty database with demo rows; ``False`` (and no change) if ``users`` has any.

    Deterministic apart from "now": the same people, villages and actions every time.
    """
    rng = random.Random(42)
    now = utcnow_naive()
    # One transaction: all or nothing, and SQLite syncs once instead of once per row.
    async with engine.begin() as db:
        if await db.scalar(text("SELECT COUNT(*) FROM users")):
            return False
        users = await _users(db, rng, now)
        players = await _players(db, rng, now, users)
        await _villages(db, rng, players)
        await _sessions(db, rng, now, users)
        await _audit(db, rng, now, users, players)
    return True


async def prepare(engine: AsyncEngine) -> None:
    """The default schema and the demo rows, once, however many workers start at once.

    ``uvicorn --workers 2`` starts two copies on one database: one seeds, the other's
    insert fails on a unique key (or SQLite's lock) and, tried again, finds the rows.
    """
    for attempt in range(1, _PREPARE_ATTEMPTS + 1):
        try:
            await create_default_schema(engine)
            await seed(engine)
            return
        except DBAPIError:
            if attempt == _PREPARE_ATTEMPTS:
                raise
            await asyncio.sleep(0.2 * attempt)  # the other worker's transaction ends
