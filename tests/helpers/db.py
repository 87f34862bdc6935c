"""The host's own statements on ``stats.database``, whichever form the fixtures passed in."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from asgi_adminstats import AdminStats
from asgi_adminstats.audit import PendingActions
from asgi_adminstats.db import Statement, open_database

from support.demo_db import DATABASE_APIS

__all__ = ["DATABASE_API", "fetch_val", "run", "run_in"]

#: The form of the host's database the fixtures pass in: "engine" (a SQLAlchemy
#: AsyncEngine, the default) or "databases" (a databases.Database).
DATABASE_API = os.environ.get("ADMINSTATS_TEST_DATABASE_API", "engine")
if DATABASE_API not in DATABASE_APIS:
    raise ValueError(f"ADMINSTATS_TEST_DATABASE_API={DATABASE_API!r}: engine or databases")


async def run(stats: AdminStats, sql: Statement) -> Any:
    """One statement, committed, as the host runs it outside any transaction."""
    return await open_database(stats.database).execute(sql)


async def fetch_val(stats: AdminStats, sql: Statement) -> Any:
    return await open_database(stats.database).fetch_val(sql)


async def run_in(stats: AdminStats, audit: PendingActions, sql: Statement) -> None:
    """One statement inside ``stats.audit_transaction()``, as the docs tell a host to:
    on ``audit.connection`` with an engine, on the same ``Database`` with ``databases``."""
    if isinstance(stats.database, AsyncEngine):
        await audit.connection.execute(text(sql) if isinstance(sql, str) else sql)
    else:
        await stats.database.execute(sql)
