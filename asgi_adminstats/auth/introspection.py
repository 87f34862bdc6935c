"""Opaque tokens: RFC 7662 introspection through authlib, cached, failing closed.

An active answer is held to the JWT rules for ``iss`` and ``aud``
(``check_issuer_and_audience``). Its subject is the first of ``sub``, ``username`` and
``client_id`` that is present and not empty: RFC 7662 makes ``sub`` optional, and a
client-credentials token has none, so the client itself is the subject. The cache
entry's end is the identity's ``recheck_at``: an open session asks again then.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from authlib.integrations.httpx_client import AsyncOAuth2Client

from ..settings import Settings
from ..telemetry import get_logger
from .errors import invalid, unavailable
from .identity import Identity, check_issuer_and_audience

__all__ = ["Introspector"]

logger = get_logger("asgi_adminstats.auth")
_CACHE_SIZE = 10_000
_TIMEOUT = 5.0
#: Where the subject comes from, in this order (the README and PROTOCOL.md say so).
_SUBJECT_CLAIMS = ("sub", "username", "client_id")


class Introspector:
    def __init__(self, settings: Settings) -> None:
        assert settings.introspection_url is not None
        self._settings = settings
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
            return replace(Identity.verified(cached[0], now=now), recheck_at=cached[1])
        self._cache.pop(key, None)
        claims = await self._introspect(token)
        check_issuer_and_audience(claims, self._settings)
        # Checked before caching: only a usable identity is remembered.
        identity = Identity.verified({**claims, "sub": _subject(claims)}, now=now)
        until = now + self._ttl
        if identity.exp is not None:
            until = min(until, identity.exp)  # never cached past the token's own expiry
        self._cache[key] = (dict(identity.claims), until)
        if len(self._cache) > _CACHE_SIZE:
            self._cache.popitem(last=False)
        return replace(identity, recheck_at=until)

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


def _subject(claims: Mapping[str, Any]) -> object:
    """The first of ``_SUBJECT_CLAIMS`` present and not empty (checked by
    ``Identity.verified``); a fallback is logged by the claim that was missing."""
    for position, name in enumerate(_SUBJECT_CLAIMS):
        value = claims.get(name)
        if value is not None and value != "":
            if position:
                missing = " or ".join(_SUBJECT_CLAIMS[:position])
                logger.info("introspected token without %s: the subject is its %s", missing, name)
            return value
    logger.info("token rejected: the introspection answer has no %s", ", ".join(_SUBJECT_CLAIMS))
    raise invalid("no_subject")
