"""Serving the component under uvicorn, with what an unauthenticated client can cost bounded.

uvicorn is not a requirement of this package (``pip install 'asgi-adminstats[server]'``):
import this package only where uvicorn runs the app. ``asgi_adminstats`` exports its names
lazily.

``uvicorn_config(app, settings, host=..., port=...)`` is the recommended uvicorn
configuration, ``run``/``serve`` listen with it on :func:`listening_socket`:

- ``ws=HardenedWebSocketProtocol`` (its docstring says what it bounds);
- ``ws_max_size`` twice ``settings.max_message_bytes`` (uvicorn's default: 16 MiB):
  websockets refuses (1009) a frame declared bigger before reading its payload, and
  stops inflating a permessage-deflate message there; a message just over
  ``max_message_bytes`` still reaches the component, which refuses it itself (1009
  "message too big", with its log line and metric);
- proxy headers off unless ``forwarded_allow_ips`` names the proxies (uvicorn believes
  ``X-Forwarded-For`` from 127.0.0.1 by default; this component's ``trusted_proxies`` is
  the other way to read it).

``run(..., workers=K)`` serves from K processes, each listening on a socket of its own on
the port (``SO_REUSEPORT``): the kernel spreads connections evenly, which uvicorn's
``--workers`` (one shared socket) does not.
"""

from ._protocol import PING_BURST, PING_RATE, HardenedWebSocketProtocol
from ._run import WS_MAX_SIZE_FACTOR, run, serve, uvicorn_config

__all__ = [
    "PING_BURST",
    "PING_RATE",
    "WS_MAX_SIZE_FACTOR",
    "HardenedWebSocketProtocol",
    "run",
    "serve",
    "uvicorn_config",
]
