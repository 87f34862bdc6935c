"""The recommended uvicorn configuration, and ``run``/``serve`` listening with it on
:func:`~asgi_adminstats.sockets.listening_socket`."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any

import uvicorn

from ..settings import Settings
from ..sockets import listening_socket
from ._protocol import HardenedWebSocketProtocol

__all__ = ["WS_MAX_SIZE_FACTOR", "run", "serve", "uvicorn_config"]

#: ``ws_max_size`` in ``max_message_bytes``: see the package's docstring.
WS_MAX_SIZE_FACTOR = 2


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
