"""The clients: a raw socket that stops reading after the handshake, and a healthy reader."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import sys
from typing import Any

from stalled.common import ORIGIN, ROOT, now

__all__ = [
    "StalledClient",
    "healthy_reader",
    "last_frames",
    "masked_frame",
]


def _wire() -> Any:
    """The hand-written handshake request and frame parser (support/wire.py)."""
    sys.path.insert(0, str(ROOT))
    from support import wire

    return wire


def _handshake(port: int, path: str, headers: dict[str, str]) -> bytes:
    handshake: bytes = _wire().handshake_request(f"127.0.0.1:{port}", headers, path)
    return handshake


def masked_frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


class StalledClient:
    """A raw socket: small receive buffer, upgrade by hand, then no more reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.head = b""

    @classmethod
    async def connect(cls, port: int, path: str, headers: dict[str, str]) -> StalledClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
            await asyncio.wait_for(loop.sock_sendall(sock, _handshake(port, path, headers)), 5)
            client = cls(sock)
            async with asyncio.timeout(5):
                while b"\r\n\r\n" not in client.head and len(client.head) < 8192:
                    chunk = await loop.sock_recv(sock, 1)  # the head only, not one byte more
                    if not chunk:
                        raise ConnectionError(f"EOF in the handshake: {client.head!r}")
                    client.head += chunk
        except BaseException:
            sock.close()
            raise
        if not client.head.startswith(b"HTTP/1.1 101"):
            sock.close()
            raise ConnectionError(f"handshake refused: {client.head[:80]!r}")
        return client

    async def send_text(self, text: str) -> None:
        frame = masked_frame(0x1, text.encode())
        await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(self.sock, frame), 5)

    async def drain(self, limit: float, max_bytes: int = 64 << 20) -> tuple[bytes, bool]:
        """Read what the server wrote: until EOF, 1 s of quiet, ``limit`` s or max_bytes."""
        loop = asyncio.get_running_loop()
        data = bytearray()
        deadline = loop.time() + limit
        while len(data) < max_bytes and loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(
                    loop.sock_recv(self.sock, 1 << 16), min(1.0, deadline - loop.time())
                )
            except TimeoutError:
                return bytes(data), False
            except ConnectionError:
                return bytes(data), True
            if not chunk:
                return bytes(data), True
            data += chunk
        return bytes(data), False

    def close(self) -> None:
        self.sock.close()


def last_frames(data: bytes) -> tuple[int, int, int | None, str]:
    """(frames, pings, close code or None, close reason) of server frames (unmasked)."""
    frames: list[tuple[int, bytes]] = _wire().parse_frames(data)
    code: int | None = None
    reason = ""
    for opcode, payload in frames:
        if opcode == 0x8 and len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            reason = payload[2:].decode(errors="replace")
    return len(frames), sum(opcode == 0x9 for opcode, _ in frames), code, reason


async def healthy_reader(
    port: int, tok: str, seconds: float, stamps: dict[str, list[float]], info: dict[str, Any]
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    async with connect(
        f"ws://127.0.0.1:{port}/admin/ws",
        additional_headers={"Authorization": f"Bearer {tok}"},
        origin=ORIGIN,  # type: ignore[arg-type]
        subprotocols=[Subprotocol("adminstats.v1")],
        open_timeout=5,
        max_size=1 << 20,
    ) as ws:
        deadline = now() + seconds
        for _ in range(10_000_000):
            left = deadline - now()
            if left <= 0:
                break
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            except ConnectionClosed:
                info["closed_by_server_at"] = now()
                break
            message = json.loads(raw)
            kind = message["type"]
            stamps.setdefault(kind, []).append(now())
            if kind == "audit_action":
                info.setdefault("ids", []).append(int(message["data"]["id"]))
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
        info["close_code"] = ws.close_code
