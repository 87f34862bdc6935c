"""The transport the hardened protocol reads and writes through, and pong-frame splitting."""

from __future__ import annotations

import asyncio
from typing import Any

__all__ = ["_GuardedTransport", "_pong_frames"]

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
