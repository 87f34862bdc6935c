"""Checks before a WebSocket is accepted: Origin, client address, connection attempts.

Starlette's CORSMiddleware skips WebSocket scopes, so the Origin check is ours.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict

from starlette.types import Scope

from .settings import Settings

__all__ = ["AttemptLimiter", "OriginGuard", "TokenBucket", "client_ip"]

_MAX_TRACKED = 100_000  # client addresses remembered by the attempt limiter


class OriginGuard:
    """Exact ``scheme://host[:port]`` match (case-insensitive); ``*`` only if configured."""

    def __init__(self, settings: Settings) -> None:
        self._allowed = frozenset(o.lower() for o in settings.allowed_origins)
        self._any = "*" in self._allowed
        self._allow_missing = settings.allow_missing_origin

    def allows(self, scope: Scope) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return self._allow_missing
        return self._any or origin.lower() in self._allowed


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


def client_ip(
    scope: Scope, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> str:
    """The client's address: the peer, or what trusted proxies say it is.

    ``X-Forwarded-For`` / ``Forwarded`` are read only when the peer is a trusted proxy,
    right to left, skipping trusted hops: anyone can write those headers.
    """
    peer = (scope.get("client") or ("unknown", 0))[0]
    if not trusted or not _is_trusted(peer, trusted):
        return str(peer)
    hops = _forwarded_for(scope)
    for hop in reversed(hops):
        if not _is_trusted(hop, trusted):
            return hop
    return hops[0] if hops else str(peer)


def _forwarded_for(scope: Scope) -> list[str]:
    forwarded = _header(scope, b"forwarded")
    if forwarded is not None:
        hops = []
        for element in forwarded.split(","):
            for pair in element.split(";"):
                name, _, value = pair.strip().partition("=")
                if name.lower() == "for":
                    hops.append(_strip_port(value.strip().strip('"')))
        return [h for h in hops if h]
    xff = _header(scope, b"x-forwarded-for")
    return [h.strip() for h in xff.split(",") if h.strip()] if xff else []


def _strip_port(value: str) -> str:
    if value.startswith("["):  # [2001:db8::1]:4711
        return value[1:].split("]", 1)[0]
    return value.split(":", 1)[0] if value.count(":") == 1 else value


def _is_trusted(
    address: str, trusted: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in trusted)


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; ``take()`` says whether one was left."""

    __slots__ = ("_burst", "_rate", "_stamp", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def take(self) -> bool:
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False

    def retry_after(self) -> int:
        """Whole seconds until the next token (for ``Retry-After``)."""
        return max(1, math.ceil((1 - self._tokens) / self._rate))

    @property
    def full(self) -> bool:
        self._refill()
        return self._tokens >= self._burst


class AttemptLimiter:
    """Connection attempts per client address; the table stays bounded."""

    def __init__(self, settings: Settings) -> None:
        self._rate = settings.connect_rate
        self._burst = settings.connect_burst
        self._buckets: OrderedDict[str, TokenBucket] = OrderedDict()

    def attempt(self, address: str) -> int | None:
        """None if allowed, else the seconds to wait."""
        bucket = self._buckets.get(address)
        if bucket is None:
            self._evict()
            bucket = self._buckets[address] = TokenBucket(self._rate, self._burst)
        self._buckets.move_to_end(address)
        return None if bucket.take() else bucket.retry_after()

    def _evict(self) -> None:
        # Forget addresses whose bucket refilled (they lose nothing), oldest first;
        # past the cap, forget the oldest anyway.
        while len(self._buckets) >= _MAX_TRACKED:
            self._buckets.popitem(last=False)
        for address in list(self._buckets)[:16]:
            if self._buckets[address].full:
                del self._buckets[address]
