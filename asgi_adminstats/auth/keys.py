"""Where verification keys come from: settings (secret, PEM) or a JWKS, fetched and cached.

The JWKS comes from ``jwks_url`` or from OIDC discovery on ``oidc_issuer``. It is cached
for ``jwks_cache_ttl``; a token with an unknown ``kid`` triggers a refetch at most every
``jwks_refetch_interval``, so a flood of made-up ``kid`` values cannot hammer the
identity provider, while a real key rotation is picked up without a restart.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx2
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OctKey, OKPKey, RSAKey

from ..settings import Settings
from ..telemetry import get_logger

__all__ = ["Key", "RemoteJWKS", "StaticKeys"]

logger = get_logger("asgi_adminstats.auth")

Key = OctKey | RSAKey | ECKey | OKPKey

_FETCH_TIMEOUT = 5.0
_MAX_JWKS_BYTES = 256 * 1024


class StaticKeys:
    """The secret (HS*) and the PEM public key from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.secret = OctKey.import_key(settings.jwt_secret) if settings.jwt_secret else None
        self.public: Key | None = None
        if settings.jwt_public_key:
            key = _import_public_pem(settings.jwt_public_key)
            if key.is_private:
                raise ValueError("jwt_public_key holds a private key: give the public key only")
            self.public = key


def _import_public_pem(pem: str) -> Key:
    # Explicit key types: an implicit import turns any garbage into an HMAC key.
    for key_type in (RSAKey, ECKey, OKPKey):
        try:
            return key_type.import_key(pem)
        except (ValueError, TypeError, JoseError):
            continue
    raise ValueError("jwt_public_key is not a PEM key (RSA, EC or Ed25519)")


class RemoteJWKS:
    def __init__(self, settings: Settings, client: httpx2.AsyncClient) -> None:
        self._settings = settings
        self._client = client
        self._keys: KeySet | None = None
        self._fetched_at = float("-inf")
        self._lock = asyncio.Lock()
        self._jwks_url = settings.jwks_url

    @property
    def available(self) -> bool:
        """Whether a JWKS was ever loaded (else the identity provider is unreachable)."""
        return self._keys is not None

    async def key(self, kid: str | None, kty: str) -> Key | None:
        """The key for ``kid`` (or the only key of type ``kty`` when there is no kid)."""
        if (
            self._keys is None
            or time.monotonic() - self._fetched_at > self._settings.jwks_cache_ttl
        ):
            await self._refresh()
        key = self._find(kid, kty)
        if key is None and kid is not None:
            await self._refresh()  # maybe rotated: look again (rate-limited)
            key = self._find(kid, kty)
        return key

    def _find(self, kid: str | None, kty: str) -> Key | None:
        if self._keys is None:
            return None
        candidates = [
            k for k in self._keys.keys if k.key_type == kty and (kid is None or k.kid == kid)
        ]
        if kid is None and len(candidates) != 1:
            return None  # ambiguous without a kid: refuse rather than guess
        return candidates[0] if candidates else None

    async def _refresh(self) -> None:
        async with self._lock:
            # Every fetch, the first and failed ones included, is rate-limited: a burst of
            # tokens waiting here, or a provider that is down, costs one request per
            # interval, not one per token.
            if time.monotonic() - self._fetched_at < self._settings.jwks_refetch_interval:
                return
            self._fetched_at = time.monotonic()
            try:
                url = self._jwks_url or await self._discover()
                self._jwks_url = url
                data = await self._get_json(url)
                self._keys = KeySet.import_key_set(data)  # type: ignore[arg-type]
                logger.info("JWKS loaded: %d keys", len(self._keys.keys))
            except Exception as exc:
                # Keep serving with the keys we had; without any, tokens fail closed.
                logger.warning("fetching the JWKS failed: %s", type(exc).__name__)

    async def _discover(self) -> str:
        issuer = (self._settings.oidc_issuer or "").rstrip("/")
        metadata = await self._get_json(f"{issuer}/.well-known/openid-configuration")
        if metadata.get("issuer", "").rstrip("/") != issuer:
            raise ValueError("the discovery document names another issuer")
        jwks_uri = metadata.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise ValueError("the discovery document has no jwks_uri")
        return jwks_uri

    async def _get_json(self, url: str) -> dict[str, Any]:
        # One deadline for the whole fetch: the client's timeout bounds each read, so a
        # provider dripping a byte at a time would otherwise hold the lock forever.
        async with asyncio.timeout(_FETCH_TIMEOUT):
            body = await self._get_bounded(url)
        data = json.loads(body)
        if not isinstance(data, dict):
            raise ValueError(f"{url} did not answer a JSON object")
        return data

    async def _get_bounded(self, url: str) -> bytes:
        """The body, streamed and refused as soon as it passes ``_MAX_JWKS_BYTES``
        (decoded: a compressed bomb stops there too), or at once when the declared
        ``Content-Length`` already does."""
        async with self._client.stream("GET", url, timeout=_FETCH_TIMEOUT) as response:
            response.raise_for_status()
            declared = response.headers.get("content-length", "")
            if declared.isascii() and declared.isdigit() and int(declared) > _MAX_JWKS_BYTES:
                raise ValueError(f"{url} declared a body over {_MAX_JWKS_BYTES} bytes")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > _MAX_JWKS_BYTES:
                    raise ValueError(f"{url} answered over {_MAX_JWKS_BYTES} bytes")
        return bytes(body)
