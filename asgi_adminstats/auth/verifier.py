"""One entry point for every token: JWT (secret, PEM, JWKS, OIDC) or introspection."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx2

from ..settings import Settings
from .errors import forbidden, invalid
from .identity import Identity, is_admin
from .jwt import JWTVerifier
from .keys import RemoteJWKS

if TYPE_CHECKING:
    from .introspection import Introspector

__all__ = ["TokenVerifier"]


class TokenVerifier:
    """Verifies a token and the admin rule; raises ``AuthError`` (4401 or 4403)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._http: httpx2.AsyncClient | None = None
        jwks = None
        if settings.jwks_url or settings.oidc_issuer:
            self._http = httpx2.AsyncClient(follow_redirects=False)
            jwks = RemoteJWKS(settings, self._http)
        self._jwt = JWTVerifier(settings, jwks) if self._has_jwt(settings) else None
        self._introspector: Introspector | None = None
        if settings.introspection_url:
            # Imported only when configured: authlib's OAuth client is the one import that
            # reaches into authlib's HTTP integration.
            from .introspection import Introspector

            self._introspector = Introspector(settings)

    @staticmethod
    def _has_jwt(settings: Settings) -> bool:
        return bool(
            settings.jwt_secret
            or settings.jwt_public_key
            or settings.jwks_url
            or settings.oidc_issuer
        )

    async def close(self) -> None:
        if self._http is not None:
            await self._http.aclose()
        if self._introspector is not None:
            await self._introspector.close()

    async def verify(self, token: str) -> Identity:
        if not token or len(token) > self._settings.max_token_bytes or not token.isascii():
            raise invalid("malformed")
        looks_like_jwt = token.count(".") == 2
        if looks_like_jwt and self._jwt is not None:
            identity = await self._jwt.verify(token)
        elif self._introspector is not None:
            identity = await self._introspector.verify(token)
        else:
            raise invalid("malformed")
        if not is_admin(identity.claims, self._settings):
            raise forbidden()
        return identity
