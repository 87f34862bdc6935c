"""Opaque tokens: RFC 7662 introspection through authlib, cached, failing closed."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from typing import Any

from authlib.integrations.httpx_client import AsyncOAuth2Client

from ..settings import Settings
from ..telemetry import get_logger
from .errors import invalid, unavailable
from .identity import Identity

__all__ = ["Introspector"]

logger = get_logger("asgi_adminstats.auth")
_CACHE_SIZE = 10_000
_TIMEOUT = 5.0


class Introspector:
    def __init__(self, settings: Settings) -> None:
        assert settings.introspection_url is not None
        self._url = settings.introspection_url
        self._ttl = settings.introspection_cache_ttl
        self._client = AsyncOAuth2Client(
            client_id=settings.introspection_client_id,
            client_secret=settings.introspection_client_secret,
            timeout=_TIMEOUT,
        )
        # sha256(token) -> (claims, cached until); only active answers are cached.
        self._cache: OrderedDict[str, tuple[dict[str, Any], float]] = OrderedDict()

    async def close(self) -> None:
        await self._client.aclose()

    async def verify(self, token: str) -> Identity:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = time.time()
        cached = self._cache.get(key)
        if cached is not None and cached[1] > now:
            self._cache.move_to_end(key)
            return Identity.verified(cached[0], now=now)
        self._cache.pop(key, None)
        claims = await self._introspect(token)
        sub = claims.get("sub") or claims.get("username")
        # Checked before caching: only a usable identity is remembered.
        identity = Identity.verified({**claims, "sub": sub}, now=now)
        until = now + self._ttl
        if identity.exp is not None:
            until = min(until, identity.exp)  # never cached past the token's own expiry
        self._cache[key] = (dict(identity.claims), until)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return identity

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            response = await self._client.introspect_token(self._url, token=token)
            response.raise_for_status()
            claims = response.json()
        except Exception as exc:
            # Fail closed: an authorization server we cannot ask admits nobody.
            logger.warning("token introspection failed: %s", type(exc).__name__)
            raise unavailable() from None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise invalid("inactive")
        return claims
