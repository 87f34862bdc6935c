"""Live admin statistics over WebSocket for any ASGI application."""

import typing

from .app import AdminStats, NotStartedError, StartupError
from .audit import AUDIT_FIELDS, install_audit_trigger
from .auth import AuthError, Identity
from .bus import PayloadTooLarge
from .cli import mint_token
from .db import DEFAULT_SCHEMA, Queries, create_default_schema
from .errors import AdminStatsError
from .middleware import AdminStatsMiddleware
from .protocol import PROTOCOL, CloseCode
from .settings import Settings, SettingsError
from .sockets import listening_socket
from .stats import Collector, CollectorFailure

if typing.TYPE_CHECKING:
    from .server import HardenedWebSocketProtocol, run, serve, uvicorn_config

__version__ = "0.1.0"

# asgi_adminstats.server needs uvicorn (the `server` extra): imported on first use only.
_SERVER_NAMES = frozenset({"HardenedWebSocketProtocol", "run", "serve", "uvicorn_config"})


def __getattr__(name: str) -> typing.Any:
    if name in _SERVER_NAMES:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_SERVER_NAMES})


__all__ = [
    "AUDIT_FIELDS",
    "DEFAULT_SCHEMA",
    "PROTOCOL",
    "AdminStats",
    "AdminStatsError",
    "AdminStatsMiddleware",
    "AuthError",
    "CloseCode",
    "Collector",
    "CollectorFailure",
    "HardenedWebSocketProtocol",
    "Identity",
    "NotStartedError",
    "PayloadTooLarge",
    "Queries",
    "Settings",
    "SettingsError",
    "StartupError",
    "__version__",
    "create_default_schema",
    "install_audit_trigger",
    "listening_socket",
    "mint_token",
    "run",
    "serve",
    "uvicorn_config",
]
