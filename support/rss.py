"""A process's peak RSS while a block runs (tests/test_server.py, bench/unauth_cost.py)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

__all__ = ["RSSSample", "peak_rss"]


@dataclass
class RSSSample:
    baseline: int
    peak: int


@contextlib.asynccontextmanager
async def peak_rss(read: Callable[[], int], every: float = 0.05) -> AsyncIterator[RSSSample]:
    """Samples ``read()`` (bytes) every ``every`` seconds while inside, once more at exit."""
    sample = RSSSample(read(), read())

    async def sampler() -> None:
        while True:
            sample.peak = max(sample.peak, read())
            await asyncio.sleep(every)

    task = asyncio.create_task(sampler())
    try:
        yield sample
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sample.peak = max(sample.peak, read())
