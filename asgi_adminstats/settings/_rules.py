"""What a valid setting is: the JWT algorithm table, the name patterns, the numeric
bounds, and the error that names a setting breaking them."""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from ..errors import AdminStatsError

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "FORWARDED_HEADERS",
    "HISTORY_POINTS_MAX",
    "IDENTIFIER",
    "KEY_TYPES",
    "SettingsError",
]

_MIN_SECRET_BYTES = 32  # RFC 7518 §3.2: an HS256 key at least as long as the hash


class SettingsError(AdminStatsError, ValueError):
    """A setting has an invalid value; the message names the setting."""

    def __init__(self, message: str, setting: str | None = None) -> None:
        super().__init__(message)
        self.setting = setting


#: Signature algorithms a token may use: the key type (``kty``) each needs, so a token
#: never picks its own key type, and whether it is allowed when ``jwt_algorithms`` is
#: empty. Which are allowed in the end depends on the keys configured (auth/jwt.py).
_ALGORITHM_TABLE: tuple[tuple[str, str, bool], ...] = (
    # (alg, kty, default)
    ("HS256", "oct", True),
    ("HS384", "oct", True),
    ("HS512", "oct", True),
    ("RS256", "RSA", True),
    ("RS384", "RSA", False),
    ("RS512", "RSA", False),
    ("PS256", "RSA", False),
    ("ES256", "EC", True),
    ("ES384", "EC", False),
    ("EdDSA", "OKP", True),
)
ALGORITHMS = tuple(alg for alg, _, _ in _ALGORITHM_TABLE)
KEY_TYPES: Mapping[str, str] = {alg: kty for alg, kty, _ in _ALGORITHM_TABLE}
DEFAULT_ALGORITHMS = tuple(alg for alg, _, default in _ALGORITHM_TABLE if default)
_COOKIE_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}")
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,39}")
#: What ``forwarded_header`` may name (RFC 7239 ``Forwarded``, or the de-facto one).
FORWARDED_HEADERS = ("x-forwarded-for", "forwarded")
#: The most snapshots the history keeps, whatever ``history_seconds`` asks: an hour at
#: 1.25 s ticks, four at the default 5 s. Bounds its memory (8 bytes per point and
#: series, at most 32 series: 0.75 MiB) and its reply (about 2.3 MB at worst).
HISTORY_POINTS_MAX = 2880
_POSITIVE = (
    "stats_interval",
    "heartbeat_interval",
    "heartbeat_timeout",
    "auth_timeout",
    "collector_timeout",
    "database_degraded_ms",
    "token_refresh_margin",
    "jwks_cache_ttl",
    "jwks_refetch_interval",
    "introspection_cache_ttl",
    "connect_rate",
    "message_rate",
)
_AT_LEAST_ONE = (
    "recent_actions",
    "max_message_bytes",
    "max_token_bytes",
    "notification_queue",
    "connect_burst",
    "max_connections",
    "max_connections_per_subject",
    "max_pending",
    "max_pending_per_client",
    "message_burst",
    "fanout_slice",
)


def _is_origin(value: str) -> bool:
    parts = urlsplit(value)
    return (
        parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and not parts.path
        and not parts.query
        and not parts.fragment
        and parts.username is None
        and not any(c.isspace() for c in value)
    )


def _require(ok: bool, name: str, problem: str) -> None:
    if not ok:
        raise SettingsError(f"setting '{name}' {problem}", name)
