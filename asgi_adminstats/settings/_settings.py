"""The frozen :class:`Settings` dataclass, checked field by field at construction."""

from __future__ import annotations

import ipaddress
import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..db import Queries
from ..protocol import SUBSCRIPTIONS
from ._env import settings_from_env
from ._rules import (
    _AT_LEAST_ONE,
    _COOKIE_NAME,
    _MIN_SECRET_BYTES,
    _POSITIVE,
    ALGORITHMS,
    FORWARDED_HEADERS,
    HISTORY_POINTS_MAX,
    IDENTIFIER,
    _is_origin,
    _require,
)

__all__ = ["Settings"]


def _default_instance() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Configuration of :class:`~asgi_adminstats.AdminStats`.

    One way to verify tokens is required: ``jwt_secret`` (HS*), ``jwt_public_key`` (a
    PEM), ``jwks_url``, ``oidc_issuer`` (discovery) or ``introspection_url`` (opaque
    tokens). Durations are in seconds.
    """

    jwt_secret: str | None = field(default=None, repr=False)
    jwt_public_key: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    oidc_issuer: str | None = None
    # Empty: DEFAULT_ALGORITHMS, those whose key type is configured.
    jwt_algorithms: tuple[str, ...] = ()
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: float = 30.0
    jwks_cache_ttl: float = 300.0
    # A token with an unknown ``kid`` refetches the JWKS at most this often.
    jwks_refetch_interval: float = 30.0
    introspection_url: str | None = None
    introspection_client_id: str | None = None
    introspection_client_secret: str | None = field(default=None, repr=False)
    introspection_cache_ttl: float = 60.0
    role_claim: str = "role"
    roles_claim: str = "roles"
    admin_role: str = "admin"
    # When set, a token whose ``scope`` (or ``scp``) holds it is an admin token too.
    admin_scope: str | None = None
    token_cookie: str | None = None
    # Off by default: a token in the URL ends up in access logs.
    allow_query_token: bool = False
    token_refresh_margin: float = 30.0
    trusted_proxies: tuple[str, ...] = ()
    # The one header believed from trusted_proxies (hypercorn's proxy-fix ``mode``): the
    # other is ignored, since a proxy that does not write it passes the client's through.
    forwarded_header: str = "x-forwarded-for"
    connect_rate: float = 5.0
    connect_burst: int = 20
    max_connections: int = 1000
    max_connections_per_subject: int = 20
    # Sockets waiting for their first ``auth`` message have their own budget, so idle
    # unauthenticated sockets never take an admin's place under max_connections.
    max_pending: int = 100
    max_pending_per_client: int = 10
    message_rate: float = 10.0
    message_burst: int = 20
    # Replaces the role rule when given: receives the verified claims.
    admin_rule: Callable[[Mapping[str, Any]], bool] | None = field(default=None, compare=False)
    allowed_origins: tuple[str, ...] = ()
    allow_missing_origin: bool = True
    database_url: str = field(default="sqlite:///./adminstats.db", repr=False)
    broadcast_url: str = field(default="memory://", repr=False)
    stats_interval: float = 5.0
    # The snapshots' figures kept for the ``history`` message, this long back (at most
    # HISTORY_POINTS_MAX snapshots); 0: off.
    history_seconds: float = 3600.0
    heartbeat_interval: float = 30.0
    heartbeat_timeout: float = 10.0
    auth_timeout: float = 5.0
    # Capped at stats_interval / 2, so a short interval needs no second setting.
    collector_timeout: float = 2.0
    database_degraded_ms: float = 250.0
    recent_actions: int = 5
    default_subscriptions: tuple[str, ...] = SUBSCRIPTIONS
    max_message_bytes: int = 4096
    max_token_bytes: int = 8192
    notification_queue: int = 100
    instance_name: str = field(default_factory=_default_instance)
    # Names the bus channels, the producer lease and the audit trigger: apps sharing
    # one Redis or PostgreSQL keep apart by using different prefixes.
    channel_prefix: str = "adminstats"
    bus_backoff_initial: float = 0.5
    bus_backoff_max: float = 10.0
    audit_table: str = "audit_log"
    # Without the PostgreSQL trigger, the producer looks for rows from other writers this
    # often (bench/audit_watch.py: p99 insert-to-dashboard about one interval); 0: off.
    audit_watch_interval: float = 0.5
    # On PostgreSQL, install the audit trigger at start-up (as ``adminstats init-db`` does).
    install_audit_trigger: bool = False
    health_endpoint: bool = True
    metrics_endpoint: bool = True  # <mount>/metrics for Prometheus
    # Require an admin token (Authorization: Bearer) on /health and /metrics, checked
    # like the WebSocket's; off by default for load balancers and scrapers on a private net.
    protect_endpoints: bool = False
    # Sessions handed a message per event-loop turn: a 5000-client fan-out yields between
    # slices so a handshake or an audit push is not held up for the whole of it.
    fanout_slice: int = 64
    # Start on the first request (or record_action) when no lifespan started the component:
    # daphne sends no lifespan. Off: such requests get 503 until a lifespan runs.
    auto_start: bool = True
    queries: Queries = field(default_factory=Queries)

    def __post_init__(self) -> None:
        _require(
            any(
                (
                    self.jwt_secret,
                    self.jwt_public_key,
                    self.jwks_url,
                    self.oidc_issuer,
                    self.introspection_url,
                )
            ),
            "jwt_secret",
            "is required unless jwt_public_key, jwks_url, oidc_issuer or introspection_url is set",
        )
        if self.jwt_secret is not None:
            _require(
                len(self.jwt_secret.encode()) >= _MIN_SECRET_BYTES,
                "jwt_secret",
                f"must be at least {_MIN_SECRET_BYTES} bytes long",
            )
        self._validate_auth()
        for name in _POSITIVE:
            _require(getattr(self, name) > 0, name, f"must be > 0 (got {getattr(self, name)!r})")
        for name in _AT_LEAST_ONE:
            _require(getattr(self, name) >= 1, name, f"must be >= 1 (got {getattr(self, name)!r})")
        _require(self.jwt_leeway >= 0, "jwt_leeway", f"must be >= 0 (got {self.jwt_leeway!r})")
        _require(
            self.max_pending_per_client <= self.max_pending,
            "max_pending_per_client",
            f"({self.max_pending_per_client}) must be at most max_pending ({self.max_pending})",
        )
        _require(
            self.heartbeat_timeout < self.heartbeat_interval,
            "heartbeat_timeout",
            f"({self.heartbeat_timeout:g}) must be shorter than heartbeat_interval "
            f"({self.heartbeat_interval:g})",
        )
        for name in ("channel_prefix", "audit_table"):
            _require(
                IDENTIFIER.fullmatch(getattr(self, name)) is not None,
                name,
                f"must be a lower-case SQL identifier (got {getattr(self, name)!r})",
            )
        _require(
            0 < self.bus_backoff_initial <= self.bus_backoff_max,
            "bus_backoff_initial",
            f"({self.bus_backoff_initial:g}) must be > 0 and at most bus_backoff_max "
            f"({self.bus_backoff_max:g})",
        )
        _require(
            self.audit_watch_interval == 0 or 0.05 <= self.audit_watch_interval <= 60,
            "audit_watch_interval",
            f"must be 0 (off) or 0.05 to 60 seconds (got {self.audit_watch_interval!r})",
        )
        _require(
            math.isfinite(self.history_seconds) and self.history_seconds >= 0,
            "history_seconds",
            f"must be 0 (off) or a number of seconds (got {self.history_seconds!r})",
        )
        _require(
            isinstance(self.install_audit_trigger, bool),
            "install_audit_trigger",
            f"must be true or false (got {self.install_audit_trigger!r})",
        )
        for name in ("role_claim", "roles_claim", "admin_role", "instance_name"):
            _require(bool(getattr(self, name)), name, "must not be empty")
        unknown = set(self.default_subscriptions) - set(SUBSCRIPTIONS)
        _require(
            not unknown,
            "default_subscriptions",
            f"unknown names {sorted(unknown)}; valid: {list(SUBSCRIPTIONS)}",
        )
        for origin in self.allowed_origins:
            _require(
                origin == "*" or _is_origin(origin),
                "allowed_origins",
                f"{origin!r} is not of the form scheme://host[:port] (or '*')",
            )
        _require(
            urlsplit(self.broadcast_url).scheme
            in ("memory", "redis", "rediss", "postgres", "postgresql"),
            "broadcast_url",
            "must start with memory://, redis:// or postgresql://",
        )
        _require(
            bool(urlsplit(self.database_url).scheme),
            "database_url",
            "must be a database URL such as sqlite:///./adminstats.db",
        )

    def _validate_auth(self) -> None:
        for name in ("jwks_url", "oidc_issuer", "introspection_url"):
            value = getattr(self, name)
            _require(
                value is None or urlsplit(value).scheme in ("https", "http"),
                name,
                f"must be an http(s) URL (got {value!r})",
            )
        unknown = set(self.jwt_algorithms) - set(ALGORITHMS)
        _require(
            not unknown,
            "jwt_algorithms",
            f"unsupported {sorted(unknown)}; supported: {', '.join(ALGORITHMS)}",
        )
        _require(
            not self.introspection_url
            or bool(self.introspection_client_id and self.introspection_client_secret),
            "introspection_client_id",
            "and introspection_client_secret are required with introspection_url",
        )
        for proxy in self.trusted_proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                _require(False, "trusted_proxies", f"{proxy!r} is not an IP address or network")
        _require(
            self.forwarded_header.lower() in FORWARDED_HEADERS,
            "forwarded_header",
            f"must be one of {', '.join(FORWARDED_HEADERS)} (got {self.forwarded_header!r})",
        )
        _require(
            self.token_cookie is None or _COOKIE_NAME.fullmatch(self.token_cookie) is not None,
            "token_cookie",
            f"is not a valid cookie name (got {self.token_cookie!r})",
        )

    @property
    def collector_deadline(self) -> float:
        """How long a collector may take: ``collector_timeout``, at most half a tick."""
        return min(self.collector_timeout, self.stats_interval / 2)

    @property
    def history_points(self) -> int:
        """Snapshots the history keeps: ``history_seconds`` of ticks, at most
        ``HISTORY_POINTS_MAX``; 0 when it is off."""
        if self.history_seconds == 0:
            return 0
        return min(HISTORY_POINTS_MAX, math.ceil(self.history_seconds / self.stats_interval))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Settings from ``ADMINSTATS_<NAME>`` variables; ``overrides`` win over them."""
        return settings_from_env(cls, environ, overrides)
