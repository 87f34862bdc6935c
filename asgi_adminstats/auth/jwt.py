"""JWT verification with joserfc: the algorithm allow-list, keys by type, the claims."""

from __future__ import annotations

import base64
import binascii
import json
import math
import warnings
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, JoseError

from ..settings import DEFAULT_ALGORITHMS, KEY_TYPES, Settings
from ..telemetry import get_logger
from .errors import expired, invalid, unavailable
from .identity import Identity, check_issuer_and_audience
from .keys import Key, RemoteJWKS, StaticKeys

__all__ = ["JWTVerifier", "allowed_algorithms"]

logger = get_logger("asgi_adminstats.auth")
_MAX_HEADER = 2048


def allowed_algorithms(settings: Settings) -> frozenset[str]:
    """The explicit allow-list: only algorithms whose key type is configured.

    So ``alg: none`` never passes, and an HS256 token signed with an RSA public key
    (the HS/RS confusion) is refused unless an HMAC secret is configured, and then it is
    checked against that secret only.
    """
    configured = set()
    if settings.jwt_secret:
        configured.add("oct")
    if settings.jwt_public_key or settings.jwks_url or settings.oidc_issuer:
        configured.update({"RSA", "EC", "OKP"})
    wanted = settings.jwt_algorithms or DEFAULT_ALGORITHMS
    return frozenset(a for a in wanted if KEY_TYPES[a] in configured)


def _header(token: str) -> dict[str, Any]:
    segment = token.split(".", 1)[0]
    if len(segment) > _MAX_HEADER:
        raise invalid()
    try:
        header = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, binascii.Error, UnicodeError):
        raise invalid() from None
    if not isinstance(header, dict):
        raise invalid()
    return header


class JWTVerifier:
    def __init__(self, settings: Settings, jwks: RemoteJWKS | None) -> None:
        self._settings = settings
        self._static = StaticKeys(settings)
        self._jwks = jwks
        self._algorithms = allowed_algorithms(settings)
        # The registry checks times and claim types; iss and aud are checked by the rule
        # introspection answers share (check_issuer_and_audience).
        claims: dict[str, Any] = {"exp": {"essential": True}, "sub": {"essential": True}}
        leeway = math.ceil(settings.jwt_leeway)  # joserfc counts whole seconds
        self._registry = jwt.JWTClaimsRegistry(leeway=leeway, **claims)

    async def verify(self, token: str) -> Identity:
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self._algorithms:
            raise invalid("algorithm")
        kid = header.get("kid")
        key = await self._key(alg, kid if isinstance(kid, str) else None)
        if key is None:
            if KEY_TYPES[alg] != "oct" and self._jwks is not None and not self._jwks.available:
                raise unavailable()
            raise invalid("unknown_key")
        try:
            with warnings.catch_warnings():
                # joserfc flags "EdDSA" as superseded by RFC 9864's names, which it does
                # not accept yet; the algorithm itself is the one allowed here.
                warnings.filterwarnings("ignore", message="EdDSA is deprecated")
                decoded = jwt.decode(token, key, algorithms=[alg])
            self._registry.validate(decoded.claims)
        except ExpiredTokenError:
            raise expired() from None
        except (JoseError, ValueError, TypeError, UnicodeError) as exc:
            # The error class says why (bad signature, wrong issuer, ...); never the token.
            logger.info("token rejected: %s", type(exc).__name__)
            raise invalid() from None
        check_issuer_and_audience(decoded.claims, self._settings)
        return Identity.verified(decoded.claims)

    async def _key(self, alg: str, kid: str | None) -> Key | None:
        kty = KEY_TYPES[alg]
        if kty == "oct":
            return self._static.secret
        public = self._static.public
        if public is not None and public.key_type == kty and (kid is None or self._jwks is None):
            return public
        if self._jwks is not None:
            return await self._jwks.key(kid, kty)
        return None
