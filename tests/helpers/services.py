"""Real Redis, PostgreSQL and MariaDB for the tests: a skip that says how to run a missing one.

A user without the services gets skips that say how to run them; CI sets
ADMINSTATS_REQUIRE_SERVICES=1, which turns every skip into a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from support import pg_pool, services
from support.services import (
    MYSQL_URL,
    POSTGRES_URL,
    REDIS_URL,
    free_port,
    has_command,
    reachable,
)

__all__ = [
    "MYSQL_URL",
    "POSTGRES_URL",
    "REDIS_URL",
    "free_port",
    "fresh_mysql_database",
    "fresh_postgres_database",
    "has_command",
    "pooled_postgres_database",
    "reachable",
    "require",
]


def require(engine: str) -> None:
    """Skip (with how to fix it) when the service is not running here."""
    host, port = services.address(engine)
    if not services.reachable(host, port):
        pytest.skip(f"{engine} is not reachable at {host}:{port}: {services.HOW[engine]}")


@contextlib.asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty database for one test; dropped afterwards. Yields its URL."""
    require("postgresql")
    async with services.fresh_postgres_database() as url:
        yield url


@contextlib.asynccontextmanager
async def pooled_postgres_database() -> AsyncIterator[str]:
    """An empty database for one test, reused by a later one when left as new."""
    require("postgresql")
    async with pg_pool.pooled_postgres_database() as url:
        yield url


@contextlib.asynccontextmanager
async def fresh_mysql_database() -> AsyncIterator[str]:
    """A new, empty MariaDB/MySQL database for one test; dropped afterwards. Its URL."""
    require("mysql")
    async with services.fresh_mysql_database() as url:
        yield url
