"""The producer lease: exactly one instance per cluster runs the stats tick.

Held on the engine the bus uses: Redis ``SET NX PX`` renewed every tick; PostgreSQL
``pg_try_advisory_lock`` on a dedicated connection (released when it dies); memory:
always this instance. ``hold()`` is asked once per tick and never raises: an engine
that cannot be reached means "not the producer".
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any, Protocol

from ..settings import Settings
from ..telemetry import get_logger
from ._engines import engine_of

__all__ = ["Lease", "LocalLease", "PostgresLease", "RedisLease", "create_lease"]

logger = get_logger("asgi_adminstats.leader")

# Renew only our own lease; give it up only if it is still ours.
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('del', KEYS[1])
end
return 0
"""


class Lease(Protocol):
    held: bool

    async def hold(self) -> bool: ...

    async def release(self) -> None:
        """Give the lease up (another instance may take it); ``hold()`` may follow."""

    async def close(self) -> None:
        """Release and free the connection (shutdown)."""


class LocalLease:
    held = True

    async def hold(self) -> bool:
        return True

    async def release(self) -> None:
        return None

    async def close(self) -> None:
        return None


class RedisLease:
    def __init__(self, url: str, *, key: str, owner: str, ttl: float, timeout: float) -> None:
        from ._redis import redis_client

        self._client = redis_client(url)
        self._key = key
        self._owner = owner
        self._ttl_ms = int(ttl * 1000)
        self._timeout = timeout
        self.held = False

    async def hold(self) -> bool:
        try:
            async with asyncio.timeout(self._timeout):
                if self.held and await self._client.eval(
                    _RENEW, 1, self._key, self._owner, self._ttl_ms
                ):
                    return True
                self.held = bool(
                    await self._client.set(self._key, self._owner, nx=True, px=self._ttl_ms)
                )
        except Exception as exc:  # unreachable, timed out, or a redis-py error: not ours
            _lost(self, exc)
        return self.held

    async def release(self) -> None:
        try:
            if self.held:
                await asyncio.wait_for(
                    self._client.eval(_RELEASE, 1, self._key, self._owner), self._timeout
                )
        except Exception as exc:  # unreachable: the lease then simply runs out
            logger.info("releasing the producer lease failed: %s", type(exc).__name__)
        finally:
            self.held = False

    async def close(self) -> None:
        await self.release()
        await self._client.aclose()


class PostgresLease:
    def __init__(self, url: str, *, key: str, application_name: str, timeout: float) -> None:
        from ._postgres import asyncpg_dsn

        self._dsn = asyncpg_dsn(url)
        self._key = key
        self._application_name = application_name
        self._timeout = timeout
        self._conn: Any = None
        self.held = False

    async def hold(self) -> bool:
        import asyncpg

        try:
            async with asyncio.timeout(self._timeout):
                if self._conn is None or self._conn.is_closed():
                    self.held = False  # the lock died with its connection
                    self._conn = await asyncpg.connect(
                        self._dsn, server_settings={"application_name": self._application_name}
                    )
                if self.held:
                    await self._conn.fetchval("SELECT 1")
                else:
                    self.held = bool(
                        await self._conn.fetchval(
                            "SELECT pg_try_advisory_lock(hashtext($1))", self._key
                        )
                    )
        except Exception as exc:  # asyncpg raises many kinds; all mean "not ours now"
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            _lost(self, exc)
        return self.held

    async def release(self) -> None:
        conn, self._conn = self._conn, None
        self.held = False
        if conn is not None:
            try:
                await asyncio.wait_for(conn.close(), self._timeout)  # frees the lock
            except Exception:
                conn.terminate()

    async def close(self) -> None:
        await self.release()


def _lost(lease: RedisLease | PostgresLease, exc: BaseException) -> None:
    if lease.held:
        logger.warning("producer lease lost: %s: %s", type(exc).__name__, exc)
    lease.held = False


def create_lease(settings: Settings) -> Lease:
    engine = engine_of(settings.broadcast_url)
    key = f"{settings.channel_prefix}:producer"
    timeout = min(2.0, settings.stats_interval / 2)
    if engine == "redis":
        # Renewed every tick; a dead producer's lease runs out within 1.5 ticks.
        owner = f"{settings.instance_name}:{uuid.uuid4().hex[:8]}"  # unique even if names clash
        return RedisLease(
            settings.broadcast_url,
            key=key,
            owner=owner,
            ttl=settings.stats_interval * 1.5,
            timeout=timeout,
        )
    if engine == "postgresql":
        name = f"{settings.channel_prefix}-lease:{settings.instance_name}"[:63]
        return PostgresLease(
            settings.broadcast_url, key=key, application_name=name, timeout=timeout
        )
    return LocalLease()
