"""Opaque tokens: RFC 7662 introspection through authlib, cached, failing closed."""

from __future__ import annotations

import hashlib
import logging
import time
from collections import OrderedDict
from typing import Any

from authlib.integrations.httpx_client import AsyncOAuth2Client

from ..protocol import CloseCode
from ..settings import Settings
from .errors import UNAVAILABLE, AuthError, invalid
from .identity import Identity

__all__ = ["Introspector"]

logger = logging.getLogger("asgi_adminstats.auth")
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
            claims = cached[0]
        else:
            self._cache.pop(key, None)
            claims = await self._introspect(token)
            exp = claims.get("exp")
            until = now + self._ttl
            if isinstance(exp, int | float):
                until = min(until, float(exp))  # never cached past the token's own expiry
            self._cache[key] = (claims, until)
            if len(self._cache) > _CACHE_SIZE:
                self._cache.popitem(last=False)
        sub = claims.get("sub") or claims.get("username")
        if not isinstance(sub, str) or not sub:
            raise invalid()
        exp = claims.get("exp")
        if isinstance(exp, int | float) and exp <= now:
            raise AuthError(CloseCode.UNAUTHORIZED, "unauthorized: token expired", "expired")
        return Identity(sub=sub, claims={**claims, "sub": sub})

    async def _introspect(self, token: str) -> dict[str, Any]:
        try:
            response = await self._client.introspect_token(self._url, token=token)
            response.raise_for_status()
            claims = response.json()
        except Exception as exc:
            # Fail closed: an authorization server we cannot ask admits nobody.
            logger.warning("token introspection failed: %s", type(exc).__name__)
            raise AuthError(CloseCode.UNAUTHORIZED, UNAVAILABLE, "unavailable") from None
        if not isinstance(claims, dict) or claims.get("active") is not True:
            raise invalid("inactive")
        return claims
