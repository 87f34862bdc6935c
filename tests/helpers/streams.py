"""Reading what an ``AdminStatsClient`` yields, with every wait bounded."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from asgi_adminstats.client import AdminStatsClient

__all__ = ["gather_for", "next_of"]

Message = dict[str, Any]


async def next_of(stream: AdminStatsClient, type_: str, timeout: float = 5.0) -> Message:
    """The next message of ``type_`` from the client, skipping others."""
    async with asyncio.timeout(timeout):
        async for message in stream:
            if message["type"] == type_:
                return message
    raise AssertionError(f"the client stopped before a {type_!r} message")


async def gather_for(stream: AdminStatsClient, seconds: float) -> list[Message]:
    """Every message the client yields for ``seconds``."""
    seen: list[Message] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            async for message in stream:
                seen.append(message)
    return seen
