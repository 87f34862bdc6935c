"""The one seam between the package and the host's database.

A SQLAlchemy ``AsyncEngine`` is the primary form; a ``databases.Database`` (the optional
``databases`` extra) is accepted too. The stats queries, the audit insert and the
trigger run through ``SqlDatabase`` and never ask which.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias, TypeGuard

from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from ..errors import StartupError
from ._databases import DatabasesDatabase
from ._engine import EngineDatabase
from ._sql import Statement

if TYPE_CHECKING:
    from databases import Database

__all__ = ["HostDatabase", "SqlDatabase", "async_url", "is_postgres", "open_database"]

#: What a host may pass as ``AdminStats(database=...)``.
HostDatabase: TypeAlias = "AsyncEngine | Database"

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
    "mariadb": "mariadb+aiomysql",
}
_DRIVER_EXTRAS = {"asyncpg": "postgres", "aiomysql": "mysql", "pymysql": "mysql"}


class SqlDatabase(Protocol):
    """Statements, a transaction, and for an owned database its connection."""

    #: The AsyncEngine or databases.Database underneath (``AdminStats.database``).
    host: Any
    #: Made from ``database_url`` by this package: connected and disposed by it.
    owned: bool

    @property
    def dialect(self) -> str:
        """``sqlite``, ``postgresql``, ``mysql``, ...; PostgreSQL under one name whatever
        the URL, MariaDB as ``mysql``."""

    @property
    def url(self) -> URL:
        """Where it is (host, port, database), as a SQLAlchemy URL."""

    @property
    def masked_url(self) -> str:
        """The URL without the password, for error messages."""

    async def connect(self) -> None: ...

    async def disconnect(self) -> None: ...

    def transaction(self) -> contextlib.AbstractAsyncContextManager[AsyncConnection | None]:
        """A transaction that the statements of the same task join; an engine's yields
        its ``AsyncConnection``, ``databases``' yields None."""

    async def fetch_all(self, sql: Statement) -> list[Mapping[str, Any]]: ...

    async def fetch_one(self, sql: Statement) -> Mapping[str, Any] | None: ...

    async def fetch_val(self, sql: Statement) -> Any: ...

    async def execute(self, sql: Statement) -> Any: ...


def async_url(url: str) -> str:
    """``database_url`` with the async driver SQLAlchemy needs: ``sqlite://`` runs on
    aiosqlite, ``postgresql://`` and ``postgres://`` on asyncpg, ``mysql://`` and
    ``mariadb://`` on aiomysql; a named driver stays."""
    scheme, sep, rest = url.partition("://")
    scheme = {"postgres": "postgresql"}.get(scheme, scheme)
    return f"{_DRIVERS.get(scheme, scheme)}{sep}{rest}"


def is_postgres(database: SqlDatabase) -> bool:
    return database.dialect == "postgresql"


def _is_databases(obj: object) -> TypeGuard[Database]:
    # A databases.Database was made by an imported databases: no import needed to check.
    module = sys.modules.get("databases")
    return module is not None and isinstance(obj, module.Database)


def open_database(database: HostDatabase | SqlDatabase | str) -> SqlDatabase:
    """The seam for the host's ``AsyncEngine`` or ``databases.Database`` (left to the
    host to connect and dispose), or for an engine made and owned from a URL."""
    if isinstance(database, EngineDatabase | DatabasesDatabase):
        return database
    if isinstance(database, AsyncEngine):
        return EngineDatabase(database, owned=False)
    if _is_databases(database):
        return DatabasesDatabase(database)
    if isinstance(database, str):
        return EngineDatabase(_owned_engine(database), owned=True)
    raise TypeError(
        "database= takes a SQLAlchemy AsyncEngine or a databases.Database, "
        f"not {type(database).__name__}"
    )


def _owned_engine(url: str) -> AsyncEngine:
    try:
        return create_async_engine(async_url(url))
    except Exception as exc:  # an unknown scheme, a missing driver
        missing = _DRIVER_EXTRAS.get(getattr(exc, "name", None) or "")
        hint = f": pip install 'asgi-adminstats[{missing}]'" if missing else ""
        raise StartupError(
            f"setting 'database_url' ({_masked(url)}): cannot use it: "
            f"{type(exc).__name__}: {exc}{hint}"
        ) from exc


def _masked(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: show its scheme only
        return url.partition("://")[0] + "://..."
