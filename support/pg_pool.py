"""PostgreSQL databases reused by the tests of one process: an empty database in a few
milliseconds instead of a CREATE and DROP DATABASE pair (a third of a second a test on
a loaded machine, hundreds of tests per run).

A database goes back to the pool only when it is as new: its connections ended, what the
test created dropped (``DROP OWNED BY CURRENT_USER``), and its catalogue fingerprint
(objects in ``public``, schemas and their grants, extensions, the database's own flags
and settings) equal to the one taken when it was created. Anything else (a test that
changed grants or created a role's objects, a lock that would not go) drops it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator

import asyncpg

from .services import POSTGRES_URL, with_database

__all__ = ["drain", "pooled_postgres_database"]

_FINGERPRINT = """
SELECT (SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace),
       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace),
       (SELECT count(*) FROM pg_type WHERE typnamespace = 'public'::regnamespace),
       (SELECT string_agg(nspname || ':' || nspowner || ':' || coalesce(nspacl::text, ''),
                          ',' ORDER BY nspname)
          FROM pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_'),
       (SELECT string_agg(extname, ',' ORDER BY extname) FROM pg_extension),
       (SELECT datallowconn::text || datconnlimit || coalesce(datacl::text, '')
          FROM pg_database WHERE datname = current_database()),
       (SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase
          WHERE d.datname = current_database())
"""

_pool: list[tuple[str, tuple[object, ...]]] = []  # (name, fingerprint when created)


async def _admin(sql: str, *args: object) -> None:
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(sql, *args)
    finally:
        await admin.close()


async def _fingerprint(connection: asyncpg.Connection) -> tuple[object, ...]:
    row = await connection.fetchrow(_FINGERPRINT)
    assert row is not None  # one row, always
    return tuple(row)


async def _create() -> tuple[str, tuple[object, ...]]:
    name = f"adminstats_t_{uuid.uuid4().hex[:12]}"
    await _admin(f'CREATE DATABASE "{name}"')
    connection = await asyncpg.connect(with_database(POSTGRES_URL, name))
    try:
        return name, await _fingerprint(connection)
    finally:
        await connection.close()


async def _reset(name: str, fingerprint: tuple[object, ...]) -> bool:
    """Whether ``name`` is as new again (else the caller drops it)."""
    try:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = $1 AND pid <> pg_backend_pid()",
                name,
            )
        finally:
            await admin.close()
        connection = await asyncpg.connect(with_database(POSTGRES_URL, name))
        try:
            await connection.execute("SET lock_timeout = '5s'")
            await connection.execute("DROP OWNED BY CURRENT_USER")
            return await _fingerprint(connection) == fingerprint
        finally:
            await connection.close()
    except (OSError, asyncpg.PostgresError):
        return False


@contextlib.asynccontextmanager
async def pooled_postgres_database() -> AsyncIterator[str]:
    """An empty database for one test (its URL), handed back to the pool afterwards."""
    name, fingerprint = _pool.pop() if _pool else await _create()
    as_new = False
    try:
        yield with_database(POSTGRES_URL, name)
        as_new = await _reset(name, fingerprint)
    finally:
        if as_new:
            _pool.append((name, fingerprint))
        else:
            await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def drain() -> None:
    """Drop the pooled databases (at the end of the run)."""
    while _pool:
        name, _ = _pool.pop()
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
