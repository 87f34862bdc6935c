"""listening_socket: the options are set and inherited, and a stalled client is dropped."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import pytest

from asgi_adminstats.sockets import listening_socket


def test_options_are_set_on_the_listening_socket() -> None:
    with listening_socket("127.0.0.1", 0, user_timeout=12.5, send_buffer=65536) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 12500
        # Linux doubles SO_SNDBUF for its bookkeeping.
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) in (65536, 131072)
        host, port = sock.getsockname()[:2]
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection((host, port)) as client:
            accepted, _ = sock.accept()
            with accepted:
                assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 12500
            client.close()


def test_none_leaves_the_system_default() -> None:
    with listening_socket("127.0.0.1", 0, user_timeout=None) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"user_timeout": 0}, "user_timeout"), ({"send_buffer": -1}, "send_buffer")],
)
def test_bad_values_name_the_option(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        listening_socket("127.0.0.1", 0, **kwargs)


async def test_a_client_that_stops_reading_is_dropped_by_the_kernel() -> None:
    """Write to a client whose receive buffer is full: the connection is reset after
    the timeout instead of living as long as the client's TCP stack answers."""
    server = listening_socket("127.0.0.1", 0, user_timeout=1.0, send_buffer=16384)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(server.getsockname())
    accepted, _ = server.accept()
    accepted.setblocking(False)
    started = time.monotonic()
    error: OSError | None = None
    try:
        while time.monotonic() - started < 15:  # bounded
            try:
                accepted.send(b"x" * 65536)
            except BlockingIOError:
                await asyncio.sleep(0.05)
            except OSError as exc:
                error = exc
                break
        assert error is not None, "the stalled connection was never dropped"
        assert time.monotonic() - started < 10
    finally:
        for sock in (accepted, client, server):
            sock.close()
