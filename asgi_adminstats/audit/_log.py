"""The audit table: insert an action, read actions back redacted to the public fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from ..db import (
    HostDatabase,
    Queries,
    SqlDatabase,
    as_utc,
    is_postgres,
    open_database,
    statement,
    utcnow_naive,
)
from ..protocol import utc_timestamp

__all__ = ["AUDIT_FIELDS", "MAX_LENGTHS", "AuditLog", "PendingActions", "redact"]

#: The only fields of an action that ever leave the server (PROTOCOL.md).
AUDIT_FIELDS = ("id", "action", "admin", "targetType", "timestamp")
#: Longest value per column, as in the default schema: an admin is an OIDC ``sub``
#: (up to 255 characters); a longer value would fail the insert on PostgreSQL.
MAX_LENGTHS = {"action": 64, "admin": 255, "target_type": 64, "target_id": 128}


def redact(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of ``Queries.recent_actions`` reduced to the public fields."""
    moment = as_utc(row["created_at"])
    return {
        "id": str(row["id"]),
        "action": str(row["action"]),
        "admin": str(row["admin"]),
        "targetType": str(row["target_type"]),
        "timestamp": utc_timestamp(moment) if moment else None,
    }


def _checked(name: str, value: object, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and name == "target_id":
        value = str(value)
    limit = MAX_LENGTHS[name]
    if not isinstance(value, str) or not value.strip() or len(value) > limit:
        raise ValueError(
            f"record_action: {name!r} must be a non-empty string of at most {limit} characters"
        )
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate: no database or client could take it
        raise ValueError(f"record_action: {name!r} is not valid Unicode text") from None
    return value


class AuditLog:
    def __init__(self, database: HostDatabase | SqlDatabase, queries: Queries) -> None:
        self._db = open_database(database)
        self._queries = queries

    @property
    def database(self) -> SqlDatabase:
        return self._db

    async def insert(
        self, action: str, admin: str, target_type: str, target_id: str | int | None = None
    ) -> dict[str, Any]:
        """Insert one action (committed on return) and give it back redacted."""
        values = {
            "action": _checked("action", action),
            "admin": _checked("admin", admin),
            "target_type": _checked("target_type", target_type),
            "target_id": _checked("target_id", target_id, required=False),
            "created_at": utcnow_naive(),
        }
        sql = self._queries.insert_action
        if is_postgres(self._db) and "returning" not in sql.lower():
            sql += " RETURNING id"
        async with self._db.transaction():
            row_id = await self._db.execute(statement(sql, **values))
        return redact({**values, "id": row_id})

    async def get(self, action_id: int | str) -> dict[str, Any] | None:
        row = await self._db.fetch_one(statement(self._queries.action_by_id, id=int(action_id)))
        return redact(row) if row is not None else None

    async def max_id(self) -> int:
        return int(await self._db.fetch_val(self._queries.last_action_id) or 0)

    async def since(self, action_id: int, limit: int) -> list[dict[str, Any]]:
        sql = statement(self._queries.actions_since, since=action_id, limit=limit)
        return [redact(row) for row in await self._db.fetch_all(sql)]

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        rows = await self._db.fetch_all(statement(self._queries.recent_actions, limit=limit))
        return [redact(row) for row in rows]


class PendingActions:
    """Actions inserted inside a transaction that has not committed yet.

    ``AdminStats.audit_transaction()`` yields one and pushes what it holds only after
    the commit: a push for a row that is then rolled back would mislead every admin.
    """

    def __init__(self, audit: AuditLog, connection: AsyncConnection | None = None) -> None:
        self._audit = audit
        self._connection = connection
        self.actions: list[dict[str, Any]] = []

    @property
    def connection(self) -> AsyncConnection:
        """The transaction's connection, on an ``AsyncEngine``: run the host's statements
        on it. With a ``databases.Database``, run them on that ``Database`` instead."""
        if self._connection is None:
            raise RuntimeError(
                "audit.connection is for an AsyncEngine; with a databases.Database, "
                "run your statements on that Database inside the transaction"
            )
        return self._connection

    async def record_action(
        self, action: str, admin: str, target_type: str, target_id: str | int | None = None
    ) -> dict[str, Any]:
        """Insert one action in the open transaction; returns it as clients will see it."""
        data = await self._audit.insert(action, admin, target_type, target_id)
        self.actions.append(data)
        return data
