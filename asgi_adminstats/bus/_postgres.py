"""PostgreSQL LISTEN/NOTIFY for broadcaster, with healing (asyncpg imported lazily)."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg

from ._healing import HealingBackend

__all__ = ["PostgresBackend", "asyncpg_dsn"]

_PROBE_EVERY = 2.0  # seconds between liveness probes of the listening connection
_TIMEOUT = 5.0


def asyncpg_dsn(url: str) -> str:
    """asyncpg speaks ``postgresql://``; accept the SQLAlchemy-style driver suffix too."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


class PostgresBackend(HealingBackend):
    def __init__(
        self, url: str, *, application_name: str, publishing: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self._publishing = publishing  # False: a listener only, no pool to publish with
        self._dsn = asyncpg_dsn(url)
        self._application_name = application_name
        self._listener: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        # NOTIFY goes through a pool: one asyncpg connection runs one query at a time,
        # and publishes come from many tasks (ticks, record_action, presence).
        self._pool: asyncpg.Pool | None = None

    async def _open(self) -> None:
        if self._pool is None and self._publishing:
            self._pool = await asyncpg.create_pool(
                self._dsn, min_size=1, max_size=2, timeout=_TIMEOUT
            )
        conn = await asyncpg.connect(
            self._dsn,
            timeout=_TIMEOUT,
            server_settings={"application_name": self._application_name},
        )
        self._lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: self._lost.set())
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            conn.terminate()
            raise
        self._listener = conn

    async def _close(self) -> None:
        conn, self._listener = self._listener, None
        if conn is not None and not conn.is_closed():
            conn.terminate()

    async def disconnect(self) -> None:
        await super().disconnect()
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _subscribe(self, channel: str) -> None:
        assert self._listener is not None
        await self._listener.add_listener(channel, self._on_notify)

    async def _unsubscribe(self, channel: str) -> None:
        if self._listener is not None and not self._listener.is_closed():
            await self._listener.remove_listener(channel, self._on_notify)

    def _on_notify(self, _conn: object, _pid: int, channel: str, payload: object) -> None:
        self._deliver(channel, str(payload))  # a NOTIFY payload is text (asyncpg types it object)

    async def _watch(self) -> None:
        # asyncpg calls the termination listener when the server drops us
        # (pg_terminate_backend); the probe catches a connection that died silently.
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), _PROBE_EVERY)
            except TimeoutError:
                assert self._listener is not None
                async with self._lock:
                    await asyncio.wait_for(self._listener.fetchval("SELECT 1"), _TIMEOUT)
                continue
            raise ConnectionError("the listening connection was terminated")

    async def publish(self, channel: str, message: Any) -> None:
        if self._pool is None:
            raise ConnectionError("the PostgreSQL bus is not connected")
        # Bounded: a pool stuck reconnecting must not hold up a tick or record_action.
        await self._pool.execute("SELECT pg_notify($1, $2)", channel, message, timeout=_TIMEOUT)
