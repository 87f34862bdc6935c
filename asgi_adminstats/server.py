"""Serving the component under uvicorn, with what an unauthenticated client can cost bounded.

uvicorn is not a requirement of this package (``pip install 'asgi-adminstats[server]'``):
import this module only where uvicorn runs the app. ``asgi_adminstats`` exports its names
lazily.

``uvicorn_config(app, settings, host=..., port=...)`` is the recommended uvicorn
configuration, ``run``/``serve`` listen with it on :func:`listening_socket`:

- ``ws=HardenedWebSocketProtocol`` (below);
- ``ws_max_size`` twice ``settings.max_message_bytes`` (uvicorn's default: 16 MiB):
  websockets refuses (1009) a frame declared bigger before reading its payload, and
  stops inflating a permessage-deflate message there; a message just over
  ``max_message_bytes`` still reaches the component, which refuses it itself (1009
  "message too big", with its log line and metric);
- proxy headers off unless ``forwarded_allow_ips`` names the proxies (uvicorn believes
  ``X-Forwarded-For`` from 127.0.0.1 by default; this component's ``trusted_proxies`` is
  the other way to read it).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import Any, cast

import uvicorn
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from .settings import Settings
from .sockets import listening_socket

__all__ = [
    "PING_BURST",
    "PING_RATE",
    "WS_MAX_SIZE_FACTOR",
    "HardenedWebSocketProtocol",
    "run",
    "serve",
    "uvicorn_config",
]

#: Pings a peer may send per second, and at once: beyond them the connection is not read
#: until the budget allows one more. Clients ping every few seconds at most (websockets:
#: 20 s; browsers never); a flood would otherwise keep a core busy parsing pings.
PING_RATE = 2.0
PING_BURST = 20

#: ``ws_max_size`` in ``max_message_bytes``: see the module's docstring.
WS_MAX_SIZE_FACTOR = 2

_OP_PONG = 0x8A  # FIN + pong; a server's frames are unmasked, a control payload < 126 bytes


def _pong_frames(data: bytes) -> list[bytes] | None:
    """``data`` split into pong frames, or ``None`` if anything else is in it."""
    frames = []
    at = 0
    while at < len(data):
        if len(data) - at < 2 or data[at] != _OP_PONG or data[at + 1] > 125:
            return None
        end = at + 2 + data[at + 1]
        if end > len(data):
            return None
        frames.append(data[at:end])
        at = end
    return frames


class _GuardedTransport(asyncio.Transport):
    """The connection's transport as the protocol sees it.

    Reads only while uvicorn wants to (it pauses while the app's queue is full), the
    write buffer is under its high-water mark and the peer is within its ping budget;
    ``close()`` is followed by ``abort()``
    when the buffer has not drained within ``close_timeout``: asyncio and uvloop
    otherwise keep a closing transport, and its buffer, until the peer reads it.
    """

    def __init__(
        self, inner: asyncio.Transport, loop: asyncio.AbstractEventLoop, close_timeout: float
    ) -> None:
        super().__init__()
        self._inner = inner
        self._loop = loop
        self._close_timeout = close_timeout
        self._wanted = True  # what uvicorn asked for
        self._write_paused = False
        self._throttled = False  # over the ping budget
        self._abort_timer: asyncio.TimerHandle | None = None
        self._lost = False

    def set_write_paused(self, paused: bool) -> None:
        self._write_paused = paused
        self._apply()

    def set_throttled(self, throttled: bool) -> None:
        self._throttled = throttled
        self._apply()

    def _apply(self) -> None:
        if self._inner.is_closing():
            return
        if self._wanted and not self._write_paused and not self._throttled:
            self._inner.resume_reading()
        else:
            self._inner.pause_reading()

    def pause_reading(self) -> None:
        self._wanted = False
        self._apply()

    def resume_reading(self) -> None:
        self._wanted = True
        self._apply()

    def is_reading(self) -> bool:
        return self._inner.is_reading()

    def close(self) -> None:
        self._inner.close()
        if self._abort_timer is None and not self._lost:
            self._abort_timer = self._loop.call_later(self._close_timeout, self._inner.abort)

    def lost(self) -> None:
        """The connection is gone: drop the abort timer (and what it holds)."""
        self._lost = True
        if self._abort_timer is not None:
            self._abort_timer.cancel()
            self._abort_timer = None

    def is_closing(self) -> bool:
        return self._inner.is_closing()

    def abort(self) -> None:
        self._inner.abort()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._inner.write(data)

    def writelines(self, list_of_data: Any) -> None:
        self._inner.writelines(list_of_data)

    def write_eof(self) -> None:
        self._inner.write_eof()

    def can_write_eof(self) -> bool:
        return self._inner.can_write_eof()

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size()

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._inner.get_write_buffer_limits()

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self._inner.set_write_buffer_limits(high, low)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._inner.get_extra_info(name, default)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._inner.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._inner.get_protocol()


class HardenedWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's default WebSocket protocol (websockets-sansio), bounded for hostile peers.

    Why a subclass: WebSocket control frames are answered below ASGI, where no app can
    reach. Upstream answers every ping with a pong written at once, and keeps reading
    whatever the peer does with the pongs: a client that pings and never reads grows the
    server's memory by hundreds of MiB, authenticated or not (issue 15). This class:

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


def uvicorn_config(
    app: Any,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    forwarded_allow_ips: str | Sequence[str] | None = None,
    **overrides: Any,
) -> uvicorn.Config:
    """The recommended ``uvicorn.Config`` for ``app`` serving the component with ``settings``.

    ``forwarded_allow_ips``: the proxies whose ``X-Forwarded-For`` uvicorn believes; none
    by default (proxy headers off). ``overrides``: any other ``uvicorn.Config`` option.
    """
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "ws": HardenedWebSocketProtocol,
        "ws_max_size": WS_MAX_SIZE_FACTOR * settings.max_message_bytes,
        "proxy_headers": forwarded_allow_ips is not None,
    }
    if forwarded_allow_ips is not None:
        options["forwarded_allow_ips"] = (
            forwarded_allow_ips
            if isinstance(forwarded_allow_ips, str)
            else list(forwarded_allow_ips)
        )
    options.update(overrides)
    return uvicorn.Config(app, **options)


def _server(
    config: uvicorn.Config, user_timeout: float | None
) -> tuple[uvicorn.Server, list[socket.socket]]:
    sock = listening_socket(config.host, config.port, user_timeout=user_timeout)
    return uvicorn.Server(config), [sock]


def run(
    app: Any,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    forwarded_allow_ips: str | Sequence[str] | None = None,
    user_timeout: float | None = 30.0,
    **overrides: Any,
) -> None:
    """Serve ``app`` with :func:`uvicorn_config` until stopped (blocks).

    It listens on ``listening_socket(host, port, user_timeout=...)``: the kernel drops a
    client that has not acknowledged sent data for ``user_timeout`` seconds.
    """
    config = uvicorn_config(
        app, settings, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips, **overrides
    )
    server, sockets = _server(config, user_timeout)
    server.run(sockets=sockets)


async def serve(
    app: Any,
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    forwarded_allow_ips: str | Sequence[str] | None = None,
    user_timeout: float | None = 30.0,
    **overrides: Any,
) -> None:
    """:func:`run` in a running event loop."""
    config = uvicorn_config(
        app, settings, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips, **overrides
    )
    server, sockets = _server(config, user_timeout)
    await server.serve(sockets=sockets)
