"""Live admin statistics over WebSocket for any ASGI application."""

from .app import AdminStats, NotStartedError, StartupError
from .audit import AUDIT_FIELDS
from .auth import AuthError, Identity
from .bus import PayloadTooLarge
from .cli import mint_token
from .middleware import AdminStatsMiddleware
from .protocol import PROTOCOL, CloseCode
from .queries import Queries
from .schema import DEFAULT_SCHEMA, create_default_schema, install_audit_trigger
from .settings import Settings, SettingsError
from .sockets import listening_socket
from .stats import Collector, CollectorFailure

__version__ = "0.1.0"

__all__ = [
    "AUDIT_FIELDS",
    "DEFAULT_SCHEMA",
    "PROTOCOL",
    "AdminStats",
    "AdminStatsMiddleware",
    "AuthError",
    "CloseCode",
    "Collector",
    "CollectorFailure",
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
]
