"""Real Redis and PostgreSQL for the tests: a skip that says how to run a missing one.

A user without the services gets skips that say how to run them; CI sets
ADMINSTATS_REQUIRE_SERVICES=1, which turns every skip into a failure.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from support import services
from support.services import POSTGRES_URL, REDIS_URL, free_port, has_command, reachable

__all__ = [
    "POSTGRES_URL",
    "REDIS_URL",
    "free_port",
    "fresh_postgres_database",
    "has_command",
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
