"""``HardenedWebSocketProtocol``: uvicorn's websockets-sansio protocol, bounded for
hostile peers (see the class)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from ._transport import _GuardedTransport, _pong_frames

__all__ = ["PING_BURST", "PING_RATE", "HardenedWebSocketProtocol"]

#: Pings a peer may send per second, and at once: beyond them the connection is not read
#: until the budget allows one more. Clients ping every few seconds at most (websockets:
#: 20 s; browsers never); a flood would otherwise keep a core busy parsing pings.
PING_RATE = 2.0
PING_BURST = 20


class HardenedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default WebSocket protocol (websockets-sansio), bounded for hostile peers.

    Why a subclass: WebSocket control frames are answered below ASGI, where no app can
    reach. Upstream answers every ping with a pong written at once, and keeps reading
    whatever the peer does with the pongs: a client that pings and never reads grows the
    server's memory by hundreds of MiB, authenticated or not. This class:

    - stops reading from a peer while the write buffer is over its high-water mark
      (uvicorn's own pausing for the app's queue is kept: see ``_GuardedTransport``);
    - answers only the latest of the pings received at once, and while the buffer is
      over the mark keeps just that one pong for when it drains (RFC 6455 5.5.3);
    - reads no more from a peer over ``PING_BURST`` pings then ``PING_RATE`` per second
      until its budget allows another (backpressure, not a close);
    - aborts a closing connection whose buffer has not drained after ``close_timeout``.

    Everything else is upstream's. tests/test_server.py runs it against real floods.
    """

    transport: _GuardedTransport

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending_pong: bytes | None = None
        self._ping_tokens = float(PING_BURST)
        self._ping_at = self.loop.time()
        self._unthrottle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        timeout = getattr(self, "close_timeout", 10.0)  # upstream's, when it has one
        self.transport = _GuardedTransport(cast(asyncio.Transport, transport), self.loop, timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._pending_pong = None
        if self._unthrottle is not None:
            self._unthrottle.cancel()
            self._unthrottle = None
        self.transport.lost()
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        self.transport.set_write_paused(True)

    def resume_writing(self) -> None:
        super().resume_writing()
        self.transport.set_write_paused(False)
        pong, self._pending_pong = self._pending_pong, None
        if pong is not None and not self.transport.is_closing():
            self.transport.write(pong)  # may pause writing again, synchronously

    def _spend_ping(self) -> None:
        now = self.loop.time()
        tokens = min(PING_BURST, self._ping_tokens + (now - self._ping_at) * PING_RATE)
        self._ping_at = now
        self._ping_tokens = max(tokens - 1, -1.0)  # no debt: a flood waits one interval
        if self._ping_tokens < 0 and self._unthrottle is None:
            self.transport.set_throttled(True)
            delay = -self._ping_tokens / PING_RATE
            self._unthrottle = self.loop.call_later(delay, self._end_throttle)

    def _end_throttle(self) -> None:
        self._unthrottle = None
        self.transport.set_throttled(False)

    def handle_ping(self) -> None:
        self._spend_ping()  # once per ping frame
        # websockets queued a pong for every ping of this read; uvicorn calls this once per
        # ping, and the first call finds them all.
        output = b"".join(self.conn.data_to_send())
        pongs = _pong_frames(output)
        if pongs is None:  # something else is queued too (a close echo): upstream's way
            self.transport.write(output)
            return
        if not pongs:
            return
        _, high = self.transport.get_write_buffer_limits()
        if self.transport.get_write_buffer_size() > high:
            self._pending_pong = pongs[-1]  # the peer is not reading: it replaces an older one
        else:
            self.transport.write(pongs[-1])
