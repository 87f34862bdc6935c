"""Real Redis and PostgreSQL for the tests: reachability, a fresh database per test.

A user without the services gets skips that say how to run them; CI sets
ADMINSTATS_REQUIRE_SERVICES=1, which turns every skip into a failure.
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
import pytest

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


def require(engine: str) -> None:
    """Skip (with how to fix it) when the service is not running here."""
    parts = urlsplit(REDIS_URL if engine == "redis" else POSTGRES_URL)
    host, port = parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS[engine]
    if not reachable(host, port):
        pytest.skip(f"{engine} is not reachable at {host}:{port}: {HOW[engine]}")


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
    """A new, empty database for one test; dropped afterwards. Yields its URL."""
    require("postgresql")
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
