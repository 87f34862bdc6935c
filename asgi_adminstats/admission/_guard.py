"""Checks before a WebSocket is accepted: Origin, client address, connection attempts.

Starlette's CORSMiddleware skips WebSocket scopes, so the Origin check is ours.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict

from starlette.types import Scope

from ..settings import Settings

__all__ = [
    "INVALID",
    "UNKNOWN",
    "AttemptLimiter",
    "Networks",
    "OriginGuard",
    "TokenBucket",
    "client_ip",
]

_MAX_TRACKED = 100_000  # client addresses remembered by the attempt limiter
_MAX_WARNED_ORIGINS = 64  # refused origins logged at WARNING, once each (then INFO)


class OriginGuard:
    """Exact ``scheme://host[:port]`` match (case-insensitive); ``*`` only if configured."""

    def __init__(self, settings: Settings) -> None:
        self._allowed = frozenset(o.lower() for o in settings.allowed_origins)
        self._any = "*" in self._allowed
        self._allow_missing = settings.allow_missing_origin
        self._warned: set[str] = set()

    def allows(self, scope: Scope) -> bool:
        origin = _header(scope, b"origin")
        if origin is None:
            return self._allow_missing
        return self._any or origin.lower() in self._allowed

    def origin(self, scope: Scope) -> str | None:
        """The request's Origin header, as sent."""
        return _header(scope, b"origin")

    def first_refusal(self, scope: Scope) -> str | None:
        """The refused Origin the first time it is refused (a bounded few), else None:
        worth a WARNING, which plain uvicorn logging shows, unlike the INFO lines."""
        origin = _header(scope, b"origin") or "(none)"
        if origin in self._warned or len(self._warned) >= _MAX_WARNED_ORIGINS:
            return None
        self._warned.add(origin)
        return origin


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return str(value.decode("latin-1"))
    return None


Networks = tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]

#: The client address when the server's is not an IP address: uvicorn's proxy-header
#: handling copies any X-Forwarded-For text into ``scope["client"]``.
INVALID = "invalid"
UNKNOWN = "unknown"  # no address at all (a Unix socket, a server that gives none)


def client_ip(scope: Scope, trusted: Networks, header: str = "x-forwarded-for") -> str:
    """The client's address, always IP text in canonical form (or a placeholder).

    ``header`` (``x-forwarded-for`` or ``forwarded``) is read only when the peer is a
    trusted proxy, right to left, skipping trusted hops: anyone can write those headers,
    and only the rightmost untrusted hop was written by a proxy we trust. The other
    header is never read, so a client cannot pick its address with the one the proxy
    does not write. A hop that is not an IP address falls back to the peer.
    """
    client = scope.get("client")
    if not client:
        return UNKNOWN
    peer = _ip(str(client[0]))
    if peer is None:
        return INVALID
    if not trusted or not _in(peer, trusted):
        return str(peer)
    hops = _forwarded_for(scope, header.lower())
    for hop in reversed(hops):
        address = _ip(hop)
        if address is None:
            return str(peer)  # whoever wrote it, it names no client: the proxy's bucket
        if not _in(address, trusted):
            return str(address)
    # Every hop trusted: the first is as close to the client as we can tell.
    return str(_ip(hops[0]) or peer) if hops else str(peer)


def _forwarded_for(scope: Scope, header: str) -> list[str]:
    # Every line of the header, in order: a proxy may append a line of its own rather
    # than extend the client's (RFC 9110 5.3: the lines are one comma-separated list).
    name = header.encode()
    joined = ",".join(
        value.decode("latin-1") for key, value in scope.get("headers") or () if key == name
    )
    if header == "forwarded":
        hops = []
        for element in joined.split(","):
            for pair in element.split(";"):
                key, _, value = pair.strip().partition("=")
                if key.lower() == "for":
                    hops.append(_strip_port(value.strip().strip('"')))
        return [h for h in hops if h]
    return [_strip_port(h.strip()) for h in joined.split(",") if h.strip()]


def _strip_port(value: str) -> str:
    if value.startswith("["):  # [2001:db8::1]:4711
        return value[1:].split("]", 1)[0]
    return value.split(":", 1)[0] if value.count(":") == 1 else value


_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def _ip(text: str) -> _Address | None:
    """``text`` as an address, or None. A zone (``fe80::1%eth0``) is refused: it is free
    text, and it would make one address many buckets; an IPv4-mapped IPv6 address is the
    IPv4 address it maps (a dual-stack socket reports IPv4 clients that way)."""
    if "%" in text:
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _in(address: _Address, trusted: Networks) -> bool:
    return any(address in network for network in trusted)


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

    @property
    def empty(self) -> bool:
        """No token left now (nothing is taken)."""
        self._refill()
        return self._tokens < 1


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

    def limited(self, address: str) -> bool:
        """Whether an attempt from ``address`` would be refused now; takes nothing."""
        bucket = self._buckets.get(address)
        return bucket is not None and bucket.empty

    def _evict(self) -> None:
        # Forget addresses whose bucket refilled (they lose nothing), oldest first;
        # past the cap, forget the oldest anyway.
        while len(self._buckets) >= _MAX_TRACKED:
            self._buckets.popitem(last=False)
        for address in list(self._buckets)[:16]:
            if self._buckets[address].full:
                del self._buckets[address]
