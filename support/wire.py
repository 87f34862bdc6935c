"""The WebSocket wire written by hand: an upgrade request, server frames parsed."""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import Mapping

from support.loopback import ORIGIN

__all__ = ["handshake_request", "parse_frames"]


def handshake_request(addr: str, headers: Mapping[str, str], path: str = "/admin/ws") -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        f"Host: {addr}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        f"Origin: {ORIGIN}",
        *(f"{name}: {value}" for name, value in headers.items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def parse_frames(data: bytes) -> list[tuple[int, bytes]]:
    """Server frames (unmasked) as (opcode, payload); a trailing partial frame is dropped."""
    frames = []
    at = 0
    for _ in range(len(data)):  # at most one frame per byte
        if at + 2 > len(data):
            break
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            (length,) = struct.unpack("!H", data[at : at + 2])
            at += 2
        elif length == 127:
            (length,) = struct.unpack("!Q", data[at : at + 8])
            at += 8
        if at + length > len(data):
            break
        frames.append((opcode, data[at : at + length]))
        at += length
    return frames
