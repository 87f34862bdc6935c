"""JWT verification with joserfc, and the admin rule."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError
from joserfc.jwk import OctKey

from ..protocol import CloseCode
from ..settings import Settings
from .errors import AuthError

__all__ = ["Identity", "JWTVerifier", "is_admin"]

logger = logging.getLogger("asgi_adminstats.auth")
_ALGORITHMS = ["HS256"]


@dataclass(frozen=True)
class Identity:
    """A verified admin: the subject and the claims (kept server-side only)."""

    sub: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def exp(self) -> float | None:
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) else None


def is_admin(claims: Mapping[str, Any], settings: Settings) -> bool:
    if settings.admin_rule is not None:
        return bool(settings.admin_rule(claims))
    if claims.get(settings.role_claim) == settings.admin_role:
        return True
    roles = claims.get(settings.roles_claim)
    return isinstance(roles, list | tuple) and settings.admin_role in roles


class JWTVerifier:
    """Verifies HS256 tokens against ``Settings.jwt_secret`` and the admin rule."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._key = OctKey.import_key(settings.jwt_secret)
        claims: dict[str, Any] = {"exp": {"essential": True}, "sub": {"essential": True}}
        if settings.jwt_issuer is not None:
            claims["iss"] = {"essential": True, "value": settings.jwt_issuer}
        if settings.jwt_audience is not None:
            claims["aud"] = {"essential": True, "value": settings.jwt_audience}
        self._registry = jwt.JWTClaimsRegistry(leeway=int(settings.jwt_leeway), **claims)

    def verify(self, token: str) -> Identity:
        """The identity of an admin token; raises :class:`AuthError` (4401 or 4403)."""
        if len(token) > self._settings.max_token_bytes:
            raise AuthError(CloseCode.UNAUTHORIZED, "unauthorized: invalid token")
        try:
            decoded = jwt.decode(token, self._key, algorithms=_ALGORITHMS)
            self._registry.validate(decoded.claims)
        except ExpiredTokenError:
            raise AuthError(CloseCode.UNAUTHORIZED, "unauthorized: token expired") from None
        except (JoseError, ValueError, TypeError, UnicodeError) as exc:
            # The error class says why (bad signature, wrong issuer, ...); never the token.
            logger.info("token rejected: %s", type(exc).__name__)
            raise AuthError(CloseCode.UNAUTHORIZED, "unauthorized: invalid token") from None
        claims = decoded.claims
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub:
            raise AuthError(CloseCode.UNAUTHORIZED, "unauthorized: invalid token")
        if not is_admin(claims, self._settings):
            raise AuthError(CloseCode.FORBIDDEN, CloseCode.FORBIDDEN.reason)
        return Identity(sub=sub, claims=claims)
