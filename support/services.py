"""Real Redis, PostgreSQL and MariaDB on loopback: their URLs, reachability, a fresh database.

Without pytest: tests/helpers/services.py turns an unreachable service into a skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import asyncpg

__all__ = [
    "DEFAULT_PORTS",
    "HOW",
    "MYSQL_URL",
    "POSTGRES_URL",
    "REDIS_URL",
    "address",
    "free_port",
    "fresh_mysql_database",
    "fresh_postgres_database",
    "has_command",
    "reachable",
    "with_database",
]

REDIS_URL = os.environ.get("ADMINSTATS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "ADMINSTATS_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"
)
#: MariaDB (or MySQL); the tests drop and recreate the default schema's tables in it.
MYSQL_URL = os.environ.get("ADMINSTATS_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
DEFAULT_PORTS = {"redis": 6379, "postgresql": 5432, "mysql": 3306}
HOW = {
    "redis": "start it with `redis-server --port 6379` (or set ADMINSTATS_TEST_REDIS_URL)",
    "postgresql": "start PostgreSQL on 127.0.0.1:5432 with a superuser `root` "
    "(or set ADMINSTATS_TEST_POSTGRES_URL)",
    "mysql": "start MariaDB on 127.0.0.1:3306 with a passwordless `root` and a database "
    "`test` (`start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd`; "
    "or set ADMINSTATS_TEST_MYSQL_URL)",
}
_URLS = {"redis": REDIS_URL, "postgresql": POSTGRES_URL, "mysql": MYSQL_URL}


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def address(engine: str) -> tuple[str, int]:
    """Where the tests expect ``engine`` ("redis", "postgresql", "mysql"): host and port."""
    parts = urlsplit(_URLS[engine])
    return parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[engine]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def has_command(name: str) -> bool:
    return shutil.which(name) is not None


def with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty database; dropped afterwards. Yields its URL."""
    name = f"adminstats_t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield with_database(POSTGRES_URL, name)
    finally:
        admin = await asyncpg.connect(POSTGRES_URL)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def fresh_mysql_database() -> AsyncIterator[str]:
    """A new, empty MariaDB/MySQL database next to ``MYSQL_URL``'s (runs sharing the
    server stay apart); dropped afterwards. Yields its URL."""
    import aiomysql  # type: ignore[import-untyped]  # the `mysql` extra: MySQL tests only

    name = f"adminstats_t_{uuid.uuid4().hex[:12]}"
    parts = urlsplit(MYSQL_URL)

    async def run(sql: str) -> None:
        conn = await aiomysql.connect(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or DEFAULT_PORTS["mysql"],
            user=parts.username or "root",
            password=parts.password or "",
            autocommit=True,
        )
        try:
            async with conn.cursor() as cursor:
                await cursor.execute(sql)
        finally:
            conn.close()

    await run(f"CREATE DATABASE `{name}`")
    try:
        yield with_database(MYSQL_URL, name)
    finally:
        await run(f"DROP DATABASE IF EXISTS `{name}`")
