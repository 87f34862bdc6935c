"""Database health (a latency probe) and the game figures, through the database seam."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from ..audit import AuditLog
from ..db import HostDatabase, Queries, SqlDatabase, open_database, statement, utcnow_naive
from .base import CollectorFailure

__all__ = ["DatabaseHealthCollector", "DatabaseStatsCollector"]

_ONLINE_USERS_WINDOW = timedelta(minutes=15)
# How SQLite, PostgreSQL and MySQL say a table is missing (the driver's exception types
# differ; SQLAlchemy wraps them all in one class, so the message is what tells).
_MISSING_TABLE = re.compile(
    r"no such table: (\S+)|relation \"?([^\s\"]+)\"? does not exist|Table '([^']+)' doesn't exist"
)
_ACTIVE_PLAYERS_WINDOW = timedelta(hours=24)


class DatabaseHealthCollector:
    """``system.database``: healthy, degraded (slow) or down, with the probe latency."""

    name = "database"

    def __init__(
        self,
        database: HostDatabase | SqlDatabase,
        queries: Queries,
        *,
        degraded_ms: float,
        timeout: float,
    ) -> None:
        self._db = open_database(database)
        self._probe = queries.probe
        self._degraded_ms = degraded_ms
        self._timeout = timeout
        self.queries = 0  # run so far: the cluster tests count them

    async def collect(self) -> Mapping[str, Any]:
        started = time.perf_counter()
        self.queries += 1
        try:
            await asyncio.wait_for(self._db.fetch_val(self._probe), self._timeout)
        except Exception as exc:  # any driver error means the same to a dashboard: down
            down = {"system": {"database": {"status": "down", "latency": None}}}
            raise CollectorFailure(f"probe failed: {type(exc).__name__}", down) from exc
        latency = round((time.perf_counter() - started) * 1000, 1)
        status = "degraded" if latency > self._degraded_ms else "healthy"
        return {"system": {"database": {"status": status, "latency": latency}}}


class DatabaseStatsCollector:
    """``online``, ``totals`` and ``activity.recentActions`` from the host's tables."""

    name = "queries"

    def __init__(
        self,
        database: HostDatabase | SqlDatabase,
        queries: Queries,
        audit: AuditLog,
        recent_actions: int,
    ) -> None:
        self._db = open_database(database)
        self._queries = queries
        self._audit = audit
        self._recent = recent_actions
        self.queries = 0  # run so far: the cluster tests count them

    async def _value(self, sql: str, **values: Any) -> int:
        self.queries += 1
        return int(await self._db.fetch_val(statement(sql, **values)) or 0)

    async def collect(self) -> Mapping[str, Any]:
        try:
            return await self._collect()
        except Exception as exc:
            missing = _MISSING_TABLE.search(str(exc))
            if missing is None:
                raise
            # An empty database is a set-up step, not a crash: one line, no traceback.
            table = next(name for name in missing.groups() if name)
            raise CollectorFailure(
                f"table {table!r} does not exist: create the tables with "
                "create_default_schema() (or `adminstats init-db`), or point "
                "Settings.queries at your own",
                {},
            ) from None

    async def _collect(self) -> Mapping[str, Any]:
        now = utcnow_naive()
        q = self._queries
        return {
            "online": {
                "users": await self._value(q.online_users, since=now - _ONLINE_USERS_WINDOW),
                "players": await self._value(q.online_players, since=now - _ACTIVE_PLAYERS_WINDOW),
            },
            "totals": {
                "players": await self._value(q.total_players),
                "villages": await self._value(q.total_villages),
            },
            "activity": {"recentActions": await self._recent_actions()},
        }

    async def _recent_actions(self) -> list[dict[str, Any]]:
        self.queries += 1
        return await self._audit.recent(self._recent)
