"""Process and host figures through psutil, off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

import psutil

__all__ = ["SystemCollector"]

_MIB = 1024 * 1024


class SystemCollector:
    name = "system"

    def __init__(self, started_at: float | None = None) -> None:
        self._started = time.monotonic() if started_at is None else started_at
        self._process = psutil.Process()

    def _read(self) -> tuple[int, int]:
        return self._process.memory_info().rss, psutil.virtual_memory().total

    async def collect(self) -> Mapping[str, Any]:
        rss, total = await asyncio.to_thread(self._read)
        return {
            "system": {
                "memory": {"used": round(rss / _MIB), "total": round(total / _MIB)},
                "uptime": int(time.monotonic() - self._started),
            }
        }
