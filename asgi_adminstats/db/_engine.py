"""The seam over a SQLAlchemy ``AsyncEngine``: the host's, or one owned from a URL."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from ..errors import StartupError
from ._sql import Statement, clause

__all__ = ["EngineDatabase"]

_Held = tuple["asyncio.Task[Any] | None", AsyncConnection]


class EngineDatabase:
    """Statements on ``engine``; inside ``transaction()`` on its connection.

    Like ``databases``, the open transaction is found through a context variable, so
    the audit insert joins the host's transaction. Only from the task that opened it:
    a task started inside must not share one connection concurrently.
    """

    def __init__(self, engine: AsyncEngine, *, owned: bool) -> None:
        self.host = engine
        self.owned = owned
        self._open: ContextVar[_Held | None] = ContextVar("adminstats_transaction", default=None)

    @property
    def dialect(self) -> str:
        name = self.host.dialect.name
        return "mysql" if name == "mariadb" else name  # one SQL for both here

    @property
    def url(self) -> URL:
        return self.host.url

    @property
    def masked_url(self) -> str:
        return self.host.url.render_as_string(hide_password=True)

    async def connect(self) -> None:
        """An owned engine: reach the server now, so a wrong ``database_url`` fails start-up.

        SQLite opens its file on first use, as ``databases`` did: a missing directory
        degrades the stats instead.
        """
        if not self.owned or self.dialect == "sqlite":
            return
        try:
            async with self.host.connect():
                pass
        except Exception as exc:
            await self.host.dispose()
            raise StartupError(
                f"setting 'database_url' ({self.masked_url}): "
                f"cannot connect: {type(exc).__name__}: {exc}"
            ) from exc

    async def disconnect(self) -> None:
        if self.owned:  # the host's engine is the host's to dispose
            await self.host.dispose()

    def _joined(self) -> AsyncConnection | None:
        held = self._open.get()
        return held[1] if held is not None and held[0] is asyncio.current_task() else None

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        async with self.host.begin() as connection:  # committed when the statement is done
            yield connection

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection | None]:
        """One transaction; a nested one is part of the open one (no savepoint)."""
        joined = self._joined()
        if joined is not None:
            yield joined
            return
        async with self.host.begin() as connection:
            token = self._open.set((asyncio.current_task(), connection))
            try:
                yield connection
            finally:
                self._open.reset(token)

    async def fetch_all(self, sql: Statement) -> list[Mapping[str, Any]]:
        async with self._connection() as connection:
            result = await connection.execute(clause(sql))
            return [dict(row._mapping) for row in result]

    async def fetch_one(self, sql: Statement) -> Mapping[str, Any] | None:
        async with self._connection() as connection:
            row = (await connection.execute(clause(sql))).first()
            return dict(row._mapping) if row is not None else None

    async def fetch_val(self, sql: Statement) -> Any:
        async with self._connection() as connection:
            return (await connection.execute(clause(sql))).scalar()

    async def execute(self, sql: Statement) -> Any:
        """The first column of a ``RETURNING`` row, else SQLite's or MySQL's last row id
        (or None)."""
        async with self._connection() as connection:
            result = await connection.execute(clause(sql))
            if result.returns_rows:
                return result.scalar()
            return result.lastrowid if self.dialect in ("sqlite", "mysql") else None
