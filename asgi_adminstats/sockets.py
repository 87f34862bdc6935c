"""A listening socket that does not keep clients that stopped reading forever.

Every ASGI server here waits for a stalled client's socket to drain, and closes it
gracefully when the app gives up: the kernel then keeps the connection and its send
queue (megabytes) for as long as the client's TCP stack answers. ``TCP_USER_TIMEOUT``
(Linux) caps how long sent data may stay unacknowledged, zero window included; accepted
sockets inherit it. ASGI gives an app no way to abort a connection itself, so this is
set where the server listens. docs/slow-consumers.md has the measurements.
"""

from __future__ import annotations

import socket

from .telemetry import get_logger

__all__ = ["bound_socket", "listening_socket"]

logger = get_logger("asgi_adminstats")


def listening_socket(
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    user_timeout: float | None = 30.0,
    send_buffer: int | None = None,
    backlog: int = 2048,
    reuse_port: bool = False,
) -> socket.socket:
    """A bound, listening TCP socket for ``uvicorn.Server(config).run(sockets=[sock])``
    (or hypercorn's ``fd://``).

    ``user_timeout``: seconds a connection may leave sent data unacknowledged before the
    kernel drops it (``None`` leaves the system default). ``send_buffer``: a fixed
    ``SO_SNDBUF`` in bytes, instead of the kernel's autotuned queue of up to several
    MiB per stalled client. ``reuse_port``: ``SO_REUSEPORT``, so that several processes
    each listen on a socket of their own on one port and the kernel spreads new
    connections over them by address hash (``run(..., workers=K)`` does this).
    """
    if user_timeout is not None and user_timeout <= 0:
        raise ValueError(f"user_timeout must be > 0 seconds (got {user_timeout!r})")
    if send_buffer is not None and send_buffer <= 0:
        raise ValueError(f"send_buffer must be > 0 bytes (got {send_buffer!r})")
    sock = bound_socket(host, port, reuse_port=reuse_port)
    try:
        if user_timeout is not None:
            option = getattr(socket, "TCP_USER_TIMEOUT", None)
            if option is None:
                logger.warning("TCP_USER_TIMEOUT is not available on this system; not set")
            else:
                sock.setsockopt(socket.IPPROTO_TCP, option, int(user_timeout * 1000))
        if send_buffer is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, send_buffer)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bound_socket(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to ``host``/``port``, not listening. With ``reuse_port`` it
    reserves the port for listening sockets of the same user that set it too: one that
    does not listen takes no connections."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except BaseException:
        sock.close()
        raise
    return sock
