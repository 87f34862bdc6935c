"""The recommended uvicorn configuration, and ``run``/``serve`` listening with it on
:func:`~asgi_adminstats.sockets.listening_socket`."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import uvicorn

from ..settings import Settings
from ..sockets import listening_socket
from ._protocol import HardenedWebSocketProtocol
from ._workers import supervise

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
    return uvicorn.Config(app, **_options(settings, host, port, forwarded_allow_ips, overrides))


def _options(
    settings: Settings,
    host: str,
    port: int,
    forwarded_allow_ips: str | Sequence[str] | None,
    overrides: dict[str, Any],
) -> dict[str, Any]:
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
    return options


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
    workers: int = 1,
    **overrides: Any,
) -> None:
    """Serve ``app`` with :func:`uvicorn_config` until stopped (blocks).

    It listens on ``listening_socket(host, port, user_timeout=...)``: the kernel drops a
    client that has not acknowledged sent data for ``user_timeout`` seconds.

    ``workers`` > 1: that many processes, each with a listening socket of its own on the
    port (``SO_REUSEPORT``: the kernel spreads connections evenly over them, which
    uvicorn's ``--workers`` does not), each a full instance on the shared bus. ``app``
    must then be an import string (``"package.module:app"``, or a factory with
    ``factory=True``), and ``settings.broadcast_url`` a shared bus (Redis or
    PostgreSQL). Run it under ``if __name__ == "__main__":``: each worker is a new
    interpreter that imports the app.
    """
    if workers != 1:
        _check_workers(app, settings, workers)
        options = _options(settings, host, port, forwarded_allow_ips, overrides)
        uvicorn.Config(app, **options)  # its own checks, here rather than in each worker
        supervise(app, options, user_timeout, workers)
        return
    config = uvicorn_config(
        app, settings, host=host, port=port, forwarded_allow_ips=forwarded_allow_ips, **overrides
    )
    server, sockets = _server(config, user_timeout)
    server.run(sockets=sockets)


def _check_workers(app: Any, settings: Settings, workers: int) -> None:
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a whole number >= 1 (got {workers!r})")
    if not isinstance(app, str):
        raise TypeError(
            f"run(workers={workers}) needs the app as an import string such as "
            f"'package.module:app' (each worker process imports it), not {type(app).__name__}"
        )
    if urlsplit(settings.broadcast_url).scheme == "memory":
        raise ValueError(
            f"run(workers={workers}): broadcast_url is memory://, which each process has "
            "to itself; give the workers a shared bus (redis:// or postgresql://)"
        )


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
