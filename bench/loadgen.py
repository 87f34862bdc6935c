"""A WebSocket load generator that costs as little CPU per received frame as it can.

Used by bench/fanout.py (run that); on its own it is a library:

    clients = Clients("127.0.0.1", port, headers=[("Authorization", "Bearer ...")])
    await clients.connect(1000, deflate=True)
    await clients.wait_frames(2, timeout=10)       # the welcome messages
    clients.begin_round(); ...trigger...; await clients.wait_round(timeout=10)
    clients.round_times()                           # first receive time per connection
    clients.stall(10)                               # 10 of them stop reading
    clients.drop(clients.conns[-10:])               # abort and forget 10 connections
    clients.close()

With ``mark=b'"audit_action"'`` the frames carrying that marker near their start are
kept apart (``begin_marks`` / ``wait_marks`` / ``mark_times``) from the others (the
rounds); with ``app_pong=True`` the component's application-level ``{"type":"ping"}``
is answered with ``{"type":"pong"}`` (its heartbeat closes a silent client 4408).

Raw ``asyncio.Protocol`` connections: the HTTP upgrade is written by hand, server frames
are parsed only as far as their length (RSV1-compressed frames are counted, never
inflated; nothing is JSON-decoded; a marker or the application ping is found by a byte
search in the first ``PEEK`` bytes of an uncompressed text frame), and each complete data
message records ``time.perf_counter()``. Pings get masked pongs (uvicorn and websockets
close a silent client after 40 s), a close gets a close.
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import struct
import time
from collections.abc import Sequence
from typing import cast

__all__ = ["PEEK", "Clients", "Conn", "HandshakeError", "masked_frame"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"  # what browsers send
_OP_TEXT, _OP_CLOSE, _OP_PING, _OP_PONG = 0x1, 0x8, 0x9, 0xA
_MAX_HANDSHAKE = 16384
PEEK = 40  # bytes of a frame's payload searched for a marker (its "type" is near the start)
_APP_PING = b'{"type":"ping"'
_APP_PONG = b'{"type":"pong"}'


class HandshakeError(RuntimeError):
    pass


def masked_frame(opcode: int, payload: bytes = b"") -> bytes:
    """A final client frame (clients must mask); small payloads only (control frames)."""
    key = os.urandom(4)
    n = len(payload)
    head = bytes((0x80 | opcode,))
    if n < 126:
        head += bytes((0x80 | n,))
    elif n < 65536:
        head += struct.pack("!BH", 0x80 | 126, n)
    else:
        head += struct.pack("!BQ", 0x80 | 127, n)
    # XOR as one big integer: no Python loop per byte.
    stream = (key * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + body


class Conn(asyncio.Protocol):
    """One client connection; ``times`` holds the receive times of this round."""

    def __init__(self, owner: Clients, request: bytes, key: bytes) -> None:
        self._owner = owner
        self._request = request
        self._accept = base64.b64encode(hashlib.sha1(key + _GUID).digest())
        self._handshake = bytearray()
        self._buf = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.upgraded = False
        self.deflate = False  # the server agreed to permessage-deflate
        self.frames = 0  # data messages received since connecting
        self.compressed = 0  # of which RSV1 (compressed)
        self.times: list[float] = []
        self.marked: list[float] = []  # receive times of marked messages (see Clients)
        self.app_pings = 0  # application-level pings answered
        self.upgraded_at = 0.0  # perf_counter when the 101 arrived
        self.closed = False
        self.stalled = False
        self.dropped = False  # aborted by ``Clients.drop``: not lost, not waited for

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not an asyncio.Transport subclass, but behaves as one.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(f"connection lost: {exc!r}"))
        self._owner._lost(self)

    def data_received(self, data: bytes) -> None:
        if self.upgraded:
            self._frames(data)
            return
        self._handshake += data
        end = self._handshake.find(b"\r\n\r\n")
        if end < 0:
            if len(self._handshake) > _MAX_HANDSHAKE:
                self._fail("handshake response too long")
            return
        head = bytes(self._handshake[:end]).decode("latin-1").split("\r\n")
        rest = bytes(self._handshake[end + 4 :])
        self._handshake = bytearray()
        if not head[0].startswith("HTTP/1.1 101"):
            self._fail(f"upgrade refused: {head[0][:60]!r}")
            return
        headers = {}
        for line in head[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if headers.get("sec-websocket-accept", "").encode() != self._accept:
            self._fail("bad Sec-WebSocket-Accept")
            return
        self.deflate = "permessage-deflate" in headers.get("sec-websocket-extensions", "")
        self.upgraded = True
        self.upgraded_at = time.perf_counter()
        self.opened.set_result(None)
        if rest:
            self._frames(rest)

    def _fail(self, reason: str) -> None:
        if not self.opened.done():
            self.opened.set_exception(HandshakeError(reason))
        if self.transport is not None:
            self.transport.abort()

    def _frames(self, data: bytes) -> None:
        buf = self._buf
        if buf:
            buf += data
            view: bytes | bytearray = buf
        else:
            view = data  # the common case: no copy
        pos, size = 0, len(view)
        mark, app_pong = self._owner.mark, self._owner.app_pong
        while size - pos >= 2:
            b0, b1 = view[pos], view[pos + 1]
            length, header = b1 & 0x7F, 2
            if length == 126:
                if size - pos < 4:
                    break
                length, header = (view[pos + 2] << 8) | view[pos + 3], 4
            elif length == 127:
                if size - pos < 10:
                    break
                length, header = int.from_bytes(view[pos + 2 : pos + 10], "big"), 10
            end = pos + header + length
            if end > size:
                break
            opcode = b0 & 0x0F
            if opcode < 0x8:
                if not b0 & 0x80:  # not FIN: continuations count once, at the end
                    pass
                elif opcode != _OP_TEXT or b0 & 0x40 or (mark is None and not app_pong):
                    self._message(b0 & 0x40 != 0)
                elif app_pong and view.startswith(_APP_PING, pos + header, end):
                    self.app_pings += 1
                    self._send(masked_frame(_OP_TEXT, _APP_PONG))
                else:
                    start = pos + header
                    peek = min(end, start + PEEK)
                    self._message(False, mark is not None and view.find(mark, start, peek) >= 0)
            elif opcode == _OP_PING:
                self._send(masked_frame(_OP_PONG, bytes(view[pos + header : end])))
            elif opcode == _OP_CLOSE:
                self._send(masked_frame(_OP_CLOSE, bytes(view[pos + header : pos + header + 2])))
                if self.transport is not None:
                    self.transport.close()
            pos = end
        if view is buf:
            del buf[:pos]
        elif pos < size:
            self._buf = bytearray(view[pos:])

    def _message(self, compressed: bool, marked: bool = False) -> None:
        self.frames += 1
        self.compressed += compressed
        if marked:
            self.marked.append(time.perf_counter())
            if len(self.marked) == 1 and self._owner._marks is not None:
                self._owner._marks.arrived()
            return
        times = self.times
        times.append(time.perf_counter())
        if len(times) == 1 and self._owner._round is not None:
            self._owner._round.arrived()

    def _send(self, frame: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(frame)


class _Wait:
    """Until each of ``pending`` connections has had one message of a kind."""

    def __init__(self, pending: int) -> None:
        self.pending = pending
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.arrived(0)

    def arrived(self, count: int = 1) -> None:
        self.pending -= count
        if self.pending <= 0 and not self.done.done():
            self.done.set_result(None)

    async def wait(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(asyncio.shield(self.done), timeout)
        except TimeoutError:
            return False
        return True


class Clients:
    """N client connections to one server, and the rounds measured on them."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        path: str = "/admin/ws",
        headers: Sequence[tuple[str, str]] = (),
        mark: bytes | None = None,
        app_pong: bool = False,
    ) -> None:
        self.host, self.port, self.path = host, port, path
        self.headers = list(headers)
        self.mark = mark  # messages with this near their start are "marked" (not rounds)
        self.app_pong = app_pong
        self.conns: list[Conn] = []
        self.lost = 0  # connections that closed after opening
        self._round: _Wait | None = None
        self._marks: _Wait | None = None

    def _request(self, key: bytes, deflate: bool) -> bytes:
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}:{self.port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key.decode()}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        if deflate:
            lines.append(f"Sec-WebSocket-Extensions: {_DEFLATE_OFFER}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _open(self, deflate: bool, timeout: float) -> Conn:
        loop = asyncio.get_running_loop()
        key = base64.b64encode(os.urandom(16))
        conn = Conn(self, self._request(key, deflate), key)
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: conn, self.host, self.port)
            await conn.opened
        return conn

    async def connect(
        self, n: int, *, deflate: bool, batch: int = 200, timeout: float = 30.0
    ) -> None:
        """Open ``n`` more connections, ``batch`` at a time (the accept backlog is finite);
        any failure aborts the lot and raises."""
        for start in range(0, n, batch):
            size = min(batch, n - start)
            results = await asyncio.gather(
                *(self._open(deflate, timeout) for _ in range(size)), return_exceptions=True
            )
            for result in results:
                if isinstance(result, Conn):
                    self.conns.append(result)
            failures = [r for r in results if isinstance(r, BaseException)]
            if failures:
                raise HandshakeError(
                    f"{len(failures)} of {size} connections failed (after {start} opened): "
                    f"{failures[0]!r}"
                )

    def _lost(self, conn: Conn) -> None:
        if conn.upgraded and not conn.dropped:
            self.lost += 1
            if not conn.stalled:
                self._never(conn)

    def _never(self, conn: Conn) -> None:
        """Its message never arrives: a round or marks under way stop waiting for it."""
        if conn.times == [] and self._round is not None:
            self._round.arrived()
        if conn.marked == [] and self._marks is not None:
            self._marks.arrived()

    # --- what scenarios use ---------------------------------------------------------

    @property
    def active(self) -> list[Conn]:
        return [c for c in self.conns if not c.closed and not c.stalled]

    async def wait_frames(self, count: int, timeout: float) -> bool:
        """Until every open, unstalled connection has received ``count`` messages."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.frames >= count for c in self.active):
                return True
            await asyncio.sleep(0.02)
        return False

    def begin_round(self) -> None:
        """Forget earlier receive times; the next (unmarked) message on each connection
        counts."""
        for conn in self.conns:
            conn.times.clear()
        self._round = _Wait(len(self.active))

    async def wait_round(self, timeout: float) -> bool:
        """Until every active connection received a message this round (or timeout)."""
        assert self._round is not None
        try:
            return await self._round.wait(timeout)
        finally:
            self._round = None

    def begin_marks(self) -> None:
        """As ``begin_round``, for the marked messages (an independent round)."""
        for conn in self.conns:
            conn.marked.clear()
        self._marks = _Wait(len(self.active))

    async def wait_marks(self, timeout: float) -> bool:
        """Until every active connection received a marked message (or timeout)."""
        assert self._marks is not None
        try:
            return await self._marks.wait(timeout)
        finally:
            self._marks = None

    def mark_times(self, conns: Sequence[Conn] | None = None) -> list[float]:
        """The first marked receive time since ``begin_marks``, per connection that had
        one (of ``conns``, default all)."""
        return [c.marked[0] for c in (self.conns if conns is None else conns) if c.marked]

    def round_times(self) -> list[float]:
        """The first receive time of this round, per connection that received one."""
        return [c.times[0] for c in self.conns if c.times]

    @property
    def receive_times(self) -> list[list[float]]:
        """Every receive time of this round, per connection (same order as ``conns``)."""
        return [list(c.times) for c in self.conns]

    def frames(self) -> int:
        return sum(c.frames for c in self.conns)

    def stall(self, k: int) -> list[Conn]:
        """Stop reading on ``k`` connections (their kernel buffers fill, then the
        server's); rounds stop waiting for them."""
        return self.stall_conns(self.active[:k])

    def stall_conns(self, conns: Sequence[Conn]) -> list[Conn]:
        """As ``stall``, on these connections."""
        for conn in conns:
            conn.stalled = True
            if conn.transport is not None:
                conn.transport.pause_reading()
        return list(conns)

    def drop(self, conns: Sequence[Conn]) -> None:
        """Abort these connections (no closing handshake) and forget them: they leave
        ``conns``, and their loss is neither counted in ``lost`` nor waited for."""
        gone = set(conns)
        for conn in gone:
            if conn.upgraded and not conn.closed and not conn.stalled:
                self._never(conn)
            conn.dropped = True
            if conn.transport is not None:
                conn.transport.abort()
        self.conns[:] = [c for c in self.conns if c not in gone]

    def resume(self) -> None:
        for conn in self.conns:
            if conn.stalled and conn.transport is not None and not conn.closed:
                conn.transport.resume_reading()
            conn.stalled = False

    def close(self) -> None:
        """Drop every connection at once (abort: no closing handshake to wait for)."""
        for conn in self.conns:
            if conn.transport is not None:
                conn.transport.abort()
        self.conns.clear()
