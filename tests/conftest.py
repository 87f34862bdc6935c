"""Fixtures: a real uvicorn server on a free loopback port per test, on the engine under test
and the host database form under test (ADMINSTATS_TEST_DATABASE_API: engine or databases).

The helpers they use (and the tests import) live in support/ (shared with bench/) and
tests/helpers/.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from asgi_adminstats import AdminStats, Settings

from helpers import services
from helpers.db import DATABASE_API
from support import pg_pool
from support.demo_db import host_database, prepare_database
from support.loopback import make_settings, serve, starlette_host


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # In CI every test must run: a skipped backend test there is a missing service.
    outcome = yield
    report = outcome.get_result()
    expected_failure = hasattr(report, "wasxfail")  # xfail reports as skipped: not a skip
    if (
        report.skipped
        and not expected_failure
        and os.environ.get("ADMINSTATS_REQUIRE_SERVICES") == "1"
    ):
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (ADMINSTATS_REQUIRE_SERVICES=1): {report.longrepr}"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    asyncio.run(pg_pool.drain())  # the databases the `backend` fixture reused


#: The tox factor picks the engine the general suite runs on.
BACKEND = os.environ.get("ADMINSTATS_TEST_BACKEND", "memory")


@pytest.fixture
async def backend(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """Settings for the engine under test: bus URL, database URL, channel prefix."""
    prefix = f"t{uuid.uuid4().hex[:10]}"  # tests sharing one Redis stay apart
    if BACKEND == "memory":
        yield {"broadcast_url": "memory://"}
    elif BACKEND == "redis":
        services.require("redis")
        yield {"broadcast_url": services.REDIS_URL, "channel_prefix": prefix}
    elif BACKEND == "postgres":
        async with services.pooled_postgres_database() as url:
            yield {"broadcast_url": url, "database_url": url, "channel_prefix": prefix}
    else:
        raise ValueError(f"ADMINSTATS_TEST_BACKEND={BACKEND!r}: memory, redis or postgres")


@pytest.fixture
async def start(tmp_path: Path, backend: dict[str, str]) -> AsyncIterator[Callable[..., Any]]:
    """``await start(settings=..., host=..., collectors=...)`` -> (stats, "host:port")."""
    async with contextlib.AsyncExitStack() as stack:

        async def _start(
            settings: Settings | None = None,
            host: Callable[[AdminStats], Any] = starlette_host,
            collectors: tuple[Any, ...] = (),
            **overrides: Any,
        ) -> tuple[AdminStats, str]:
            settings = settings or make_settings(tmp_path, **{**backend, **overrides})
            await prepare_database(settings.database_url)
            database = await stack.enter_async_context(
                host_database(settings.database_url, DATABASE_API)
            )
            stats = AdminStats(settings, database=database, collectors=collectors)
            address = await stack.enter_async_context(serve(host(stats)))
            return stats, address

        yield _start


@pytest.fixture
async def server_with(tmp_path: Path, backend: dict[str, str]) -> AsyncIterator[Callable[..., Any]]:
    """``await server_with({"ws": "wsproto"}, **settings)`` -> (stats, address).

    Like ``start``, with uvicorn options as the first argument.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def _start(uvicorn: Mapping[str, Any], **overrides: Any) -> tuple[AdminStats, str]:
            settings = make_settings(tmp_path, **{**backend, **overrides})
            await prepare_database(settings.database_url)
            database = await stack.enter_async_context(
                host_database(settings.database_url, DATABASE_API)
            )
            stats = AdminStats(settings, database=database)
            addr = await stack.enter_async_context(serve(starlette_host(stats), **uvicorn))
            return stats, addr

        yield _start
