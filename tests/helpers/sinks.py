"""A stand-in for a connection's send: a write waits on cue (a real server does so only
when the kernel's and the transport's buffers are full: bench/stalled_reader.py covers
that), or fails before or after waiting."""

from __future__ import annotations

import asyncio


class Sink:
    """Records written frames; ``room`` cleared makes the next write wait for it."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.room = asyncio.Event()
        self.room.set()
        self.error: Exception | None = None  # raised before the write waits
        self.late_error: Exception | None = None  # raised once it found room

    async def send_text(self, text: str) -> None:
        if self.error is not None:
            raise self.error
        await self.room.wait()
        if self.late_error is not None:
            raise self.late_error
        self.frames.append(text)


async def settle(sink: Sink, count: int) -> None:
    for _ in range(200):
        if len(sink.frames) >= count:
            return
        await asyncio.sleep(0.001)
