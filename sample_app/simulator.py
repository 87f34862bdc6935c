"""Fake player traffic, so the dashboard's numbers move while someone watches."""

from __future__ import annotations

import asyncio
import logging
import random
from datetime import datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from asgi_adminstats.db import statement, utcnow_naive

__all__ = ["Simulator", "simulate"]

logger = logging.getLogger("sample_app")

# Rates are per period (one second by default). Online users settle near
# JOIN * (1 / LEAVE + 900 s of the 15-minute window), about 150 here, and change by
# a few between 5-second ticks.
JOIN = 0.12  # a known session comes back online
NEW_SESSION = 0.06  # a user logs in on a new device
LEAVE = 1 / 300  # per online session: mean stay five minutes
PLAYER_ACTIVE = 0.6  # a player acts (the 24-hour count creeps up)
NEW_VILLAGE = 0.1
NEW_PLAYER = 0.02
_TOUCH = 25  # online sessions refreshed per period: each well inside 15 min
_RESUME_WINDOW = timedelta(minutes=5)


class Simulator:
    """One step of traffic at a time; the online set lives in memory, the rest in SQL."""

    def __init__(self, engine: AsyncEngine, rng: random.Random | None = None) -> None:
        self._engine = engine
        self._rng = rng or random.Random()
        self._online: set[int] | None = None

    @staticmethod
    async def _random_id(db: AsyncConnection, table: str) -> int | None:
        # Picked from real rows: ids need not be contiguous, and foreign keys must hold.
        value = await db.scalar(text(f"SELECT id FROM {table} ORDER BY RANDOM() LIMIT 1"))
        return None if value is None else int(value)

    @staticmethod
    async def _resume(db: AsyncConnection) -> set[int]:
        # Sessions the seed (or a previous run) left recently active carry on.
        ids = await db.scalars(
            statement(
                "SELECT id FROM sessions WHERE last_seen_at >= :since",
                since=utcnow_naive() - _RESUME_WINDOW,
            )
        )
        return {int(i) for i in ids}

    async def step(self) -> None:
        """One period of traffic, in one transaction."""
        async with self._engine.begin() as db:
            await self._step(db)

    async def _step(self, db: AsyncConnection) -> None:
        rng = self._rng
        if self._online is None:
            self._online = await self._resume(db)
        online = self._online
        now = utcnow_naive()
        online.difference_update([s for s in online if rng.random() < LEAVE])
        if rng.random() < JOIN and (session := await self._random_id(db, "sessions")):
            online.add(session)
        if rng.random() < NEW_SESSION and (user := await self._random_id(db, "users")):
            online.add(await self._new_session(db, user, now))
        touched = rng.sample(sorted(online), min(_TOUCH, len(online)))
        if touched:
            ids = ", ".join(str(int(s)) for s in touched)
            await db.execute(
                statement(f"UPDATE sessions SET last_seen_at = :now WHERE id IN ({ids})", now=now)
            )
        if rng.random() < PLAYER_ACTIVE and (player := await self._random_id(db, "players")):
            await db.execute(
                statement(
                    "UPDATE players SET last_active_at = :now WHERE id = :id", now=now, id=player
                )
            )
        if rng.random() < NEW_VILLAGE and (player := await self._random_id(db, "players")):
            await db.execute(
                statement(
                    "INSERT INTO villages (player_id, name) VALUES (:player, :name)",
                    player=player,
                    name=f"New Hamlet {rng.randint(1, 9999)}",
                )
            )
        if rng.random() < NEW_PLAYER and (user := await self._random_id(db, "users")):
            await db.execute(
                statement(
                    "INSERT INTO players (user_id, name, banned, last_active_at)"
                    " VALUES (:user, :name, :banned, :now)",
                    user=user,
                    name=f"Newcomer {rng.randint(1, 99999)}",
                    banned=False,
                    now=now,
                )
            )

    @staticmethod
    async def _new_session(db: AsyncConnection, user: int, now: datetime) -> int:
        sql = "INSERT INTO sessions (user_id, last_seen_at) VALUES (:user, :now)"
        if db.dialect.name == "postgresql":  # SQLite before 3.35 has no RETURNING
            return int(await db.scalar(statement(sql + " RETURNING id", user=user, now=now)))
        return int((await db.execute(statement(sql, user=user, now=now))).lastrowid)


async def simulate(
    engine: AsyncEngine, *, period: float = 1.0, rng: random.Random | None = None
) -> None:
    """Run steps forever (cancel to stop); a failing step is logged and skipped."""
    simulator = Simulator(engine, rng)
    failing = False
    while True:
        try:
            await simulator.step()
        except Exception as exc:
            # A database outage should show on the dashboard, not kill the demo traffic;
            # the full traceback only once per outage keeps the log readable.
            if failing:
                logger.warning("simulator step failed again: %s: %s", type(exc).__name__, exc)
            else:
                logger.exception("simulator step failed; retrying every %.1f s", period)
            failing = True
        else:
            if failing:
                logger.info("simulator recovered")
            failing = False
        await asyncio.sleep(period)
