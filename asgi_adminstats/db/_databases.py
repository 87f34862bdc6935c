"""The seam over a host's ``databases.Database`` (the optional ``databases`` extra).

Nothing here imports ``databases``: the object passed in brings it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection

from ._sql import Statement, clause

if TYPE_CHECKING:
    from databases import Database

__all__ = ["DatabasesDatabase"]


class DatabasesDatabase:
    """Statements on the host's ``Database``: connected and disconnected by the host."""

    owned = False

    def __init__(self, database: Database) -> None:
        self.host = database

    @property
    def dialect(self) -> str:
        # postgresql:// and postgres:// both reach PostgreSQL through databases.
        dialect = str(self.host.url.dialect)
        return {"postgres": "postgresql", "mariadb": "mysql"}.get(dialect, dialect)

    @property
    def url(self) -> URL:
        return make_url(str(self.host.url))

    @property
    def masked_url(self) -> str:
        return str(self.host.url.obscure_password)

    async def connect(self) -> None:
        """The host connects its own ``Database``."""

    async def disconnect(self) -> None:
        """The host disconnects its own ``Database``."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection | None]:
        """``databases``' transaction: its statements find it through a context variable."""
        async with self.host.transaction():
            yield None

    async def fetch_all(self, sql: Statement) -> list[Mapping[str, Any]]:
        return [row._mapping for row in await self.host.fetch_all(clause(sql))]

    async def fetch_one(self, sql: Statement) -> Mapping[str, Any] | None:
        row = await self.host.fetch_one(clause(sql))
        return row._mapping if row is not None else None

    async def fetch_val(self, sql: Statement) -> Any:
        return await self.host.fetch_val(clause(sql))

    async def execute(self, sql: Statement) -> Any:
        return await self.host.execute(clause(sql))
