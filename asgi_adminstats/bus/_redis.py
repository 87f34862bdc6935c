"""Redis pub/sub for broadcaster, with healing (redis-py imported lazily by the caller)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from ._healing import HealingBackend

__all__ = ["RedisBackend", "redis_client"]

_POLL = 0.25  # seconds a read waits: bounds how long a shutdown waits for it


def redis_client(url: str) -> Redis:
    # No silent retries inside redis-py: a lost connection must surface here, so the
    # bus can mark the outage, resubscribe and replay what was missed.
    client: Redis = Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=5,
        socket_timeout=10,
        health_check_interval=5,
    )
    return client


class RedisBackend(HealingBackend):
    def __init__(self, url: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._url = url
        self._client: Redis | None = None
        self._pubsub: PubSub | None = None
        self._has_channels = asyncio.Event()

    async def _open(self) -> None:
        client = redis_client(self._url)
        try:
            await client.ping()
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            if self._channels:
                await pubsub.subscribe(*self._channels)
        except BaseException:
            await client.aclose()
            raise
        self._client, self._pubsub = client, pubsub

    async def _close(self) -> None:
        pubsub, client = self._pubsub, self._client
        self._pubsub = self._client = None
        for closable in (pubsub, client):
            if closable is not None:
                # Closing a connection that is already gone may fail: it is gone anyway.
                with contextlib.suppress(OSError, ConnectionError, RuntimeError):
                    await closable.aclose()

    async def _subscribe(self, channel: str) -> None:
        assert self._pubsub is not None
        await self._pubsub.subscribe(channel)
        self._has_channels.set()

    async def _unsubscribe(self, channel: str) -> None:
        if self._pubsub is not None:
            await self._pubsub.unsubscribe(channel)

    async def _watch(self) -> None:
        while True:
            pubsub = self._pubsub
            assert pubsub is not None
            if not pubsub.subscribed:
                # Nothing to read yet; still notice a dead server, and start reading as
                # soon as the first channel is subscribed.
                assert self._client is not None
                await self._client.ping()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._has_channels.wait(), _POLL)
                continue
            async with self._lock:  # reads in short slices so (un)subscribes get a turn
                message = await pubsub.get_message(timeout=_POLL)
            if message is not None and message["type"] == "message":
                self._deliver(message["channel"].decode(), message["data"].decode())

    async def publish(self, channel: str, message: Any) -> None:
        if self._client is None:
            raise ConnectionError("the Redis bus is reconnecting")
        await self._client.publish(channel, message)
