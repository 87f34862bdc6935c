"""Real Redis and PostgreSQL on loopback: their URLs, reachability, a fresh database.

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
    "POSTGRES_URL",
    "REDIS_URL",
    "address",
    "free_port",
    "fresh_postgres_database",
    "has_command",
    "reachable",
    "with_database",
]

REDIS_URL = os.environ.get("ADMINSTATS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "ADMINSTATS_TEST_POSTGRES_URL", "postgresql://root@127.0.0.1:5432/test"
)
DEFAULT_PORTS = {"redis": 6379, "postgresql": 5432}
HOW = {
    "redis": "start it with `redis-server --port 6379` (or set ADMINSTATS_TEST_REDIS_URL)",
    "postgresql": "start PostgreSQL on 127.0.0.1:5432 with a superuser `root` "
    "(or set ADMINSTATS_TEST_POSTGRES_URL)",
}


def reachable(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
        return True
    return False


def address(engine: str) -> tuple[str, int]:
    """Where the tests expect ``engine`` ("redis" or "postgresql"): host and port."""
    parts = urlsplit(REDIS_URL if engine == "redis" else POSTGRES_URL)
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
