"""The producer lease on real engines: one holder, renewal, hand-over."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from asgi_adminstats.bus import LocalLease, PostgresLease, RedisLease

from helpers import services

pytestmark = pytest.mark.engines


def _redis(owner: str, key: str, ttl: float = 0.5) -> RedisLease:
    return RedisLease(services.REDIS_URL, key=key, owner=owner, ttl=ttl, timeout=1)


async def test_local_lease_always_holds() -> None:
    assert await LocalLease().hold()


async def test_redis_lease_one_holder_renewal_and_expiry() -> None:
    services.require("redis")
    key = f"t:{uuid.uuid4().hex}"
    a, b = _redis("a", key), _redis("b", key)
    try:
        assert await a.hold() is True
        assert await b.hold() is False
        for _ in range(4):  # renewed every "tick" (0.2 s) past the 0.5 s TTL
            await asyncio.sleep(0.2)
            assert await a.hold() is True
            assert await b.hold() is False
        # a stops renewing (a crash): b takes over once the TTL has run out.
        await asyncio.sleep(0.6)
        assert await b.hold() is True
        assert await a.hold() is False  # and a does not steal it back
    finally:
        await a.release()
        await b.release()


async def test_redis_lease_release_hands_over_at_once() -> None:
    services.require("redis")
    key = f"t:{uuid.uuid4().hex}"
    a, b = _redis("a", key, ttl=30), _redis("b", key, ttl=30)
    try:
        assert await a.hold()
        await a.release()
        assert await b.hold()
    finally:
        await b.release()


async def test_redis_lease_unreachable_means_not_holding() -> None:
    lease = RedisLease("redis://127.0.0.1:1/0", key="k", owner="a", ttl=1, timeout=0.5)
    assert await lease.hold() is False
    await lease.release()


async def test_postgres_lease_freed_when_its_connection_dies() -> None:
    async with services.fresh_postgres_database() as url:
        a = PostgresLease(url, key="t:producer", application_name="t-lease-a", timeout=2)
        b = PostgresLease(url, key="t:producer", application_name="t-lease-b", timeout=2)
        admin = await asyncpg.connect(url)
        try:
            assert await a.hold() is True
            assert await b.hold() is False
            assert await a.hold() is True  # still held: the connection is alive
            await admin.execute(  # waits (up to 5 s) until the backend is gone
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE application_name = 't-lease-a'"
            )
            assert await b.hold() is True  # the lock died with a's connection
            assert await a.hold() is False  # a notices, reconnects, and stays out
        finally:
            await admin.close()
            await a.release()
            await b.release()


async def test_postgres_lease_release_hands_over() -> None:
    async with services.fresh_postgres_database() as url:
        a = PostgresLease(url, key="t:p", application_name="t-a", timeout=2)
        b = PostgresLease(url, key="t:p", application_name="t-b", timeout=2)
        try:
            assert await a.hold()
            await a.release()
            assert await b.hold()
        finally:
            await b.release()
