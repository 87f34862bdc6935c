"""A cheaper ``Clients`` for throughput runs: frames counted, no clock read per frame.

    clients = CountingClients("127.0.0.1", port, headers=[...])
    await clients.connect(5000, deflate=False)
    clients.expect(7)                      # every connection's 7th data message
    ...trigger...
    await clients.wait_count(7, timeout=10)

The frame parsing is loadgen.py's (headers only, pings answered, closes honoured); what
it leaves out per message is ``time.perf_counter()``, the per-connection list of receive
times and the first-of-round bookkeeping. Completion is tracked per message number: the
connections still short of each expected count, so several publishes can be in flight
at once, and a load generator that falls behind reads several frames per ``recv``
(uvloop reads what is there) instead of paying a wake-up per frame.
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import base64
import os
import time
from typing import Any

from loadgen import Clients, Conn

__all__ = ["CountingClients", "CountingConn"]


class CountingConn(Conn):
    """A ``Conn`` that only counts data messages (marks and rounds are not used)."""

    def __init__(self, owner: CountingClients, request: bytes, key: bytes) -> None:
        super().__init__(owner, request, key)
        self._counting = owner
        self._pending = owner.pending  # the same dict for the connection's life

    def _message(self, compressed: bool, marked: bool = False) -> None:
        self.frames += 1
        self.compressed += compressed
        if self.frames in self._pending:
            self._counting._arrived(self.frames)


class CountingClients(Clients):
    """``Clients`` of :class:`CountingConn`; ``expect``/``wait_count`` instead of rounds."""

    def __init__(self, host: str, port: int, **options: Any) -> None:
        super().__init__(host, port, **options)
        self.pending: dict[int, int] = {}  # message number -> connections still short of it
        self._reached: dict[int, asyncio.Future[None]] = {}

    async def _open(self, deflate: bool, timeout: float) -> Conn:
        loop = asyncio.get_running_loop()
        key = base64.b64encode(os.urandom(16))
        conn = CountingConn(self, self._request(key, deflate), key)
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: conn, self.host, self.port)
            await conn.opened
        return conn

    def expect(self, count: int) -> None:
        """From now on, track every active connection reaching ``count`` messages (each
        must be below it: the caller knows they all are at the same count)."""
        active = self.active
        if any(c.frames >= count for c in active):
            raise RuntimeError(f"expect({count}): a connection is there already")
        self.pending[count] = len(active)
        self._reached[count] = asyncio.get_running_loop().create_future()
        if not active:
            self._arrived(count, 0)

    def _arrived(self, count: int, step: int = 1) -> None:
        left = self.pending[count] - step
        self.pending[count] = left
        if left <= 0:
            del self.pending[count]
            future = self._reached.pop(count)
            if not future.done():
                future.set_result(None)

    async def wait_count(self, count: int, timeout: float) -> bool:
        """Until every connection tracked by ``expect(count)`` has ``count`` messages."""
        future = self._reached.get(count)
        if future is None:
            return count not in self.pending
        try:
            await asyncio.wait_for(asyncio.shield(future), timeout)
        except TimeoutError:
            return False
        return True

    def _lost(self, conn: Conn) -> None:
        super()._lost(conn)
        if conn.upgraded and not conn.stalled:  # never arrives: do not wait for it
            for count in [c for c in self.pending if conn.frames < c]:
                self._arrived(count)

    async def settle(self, quiet: float, timeout: float) -> bool:
        """Until no connection has received a message for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        last, since = self.frames(), time.monotonic()
        while time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            if (now := self.frames()) != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return True
        return False

    def zero(self) -> None:
        """Count every connection's messages from here on (what came before forgotten)."""
        if self.pending:
            raise RuntimeError("zero() while messages are expected")
        for conn in self.conns:
            conn.frames = 0

    def pause(self) -> None:
        """Stop reading on every connection: what arrives waits in the kernel's buffers
        (read later in bulk, several frames per ``recv``)."""
        for conn in self.active:
            if conn.transport is not None:
                conn.transport.pause_reading()

    def resume(self) -> None:
        for conn in self.active:
            if conn.transport is not None:
                conn.transport.resume_reading()
