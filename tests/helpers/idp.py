"""A small but real OpenID provider for the authentication tests.

The verifier talks HTTP to discovery, JWKS and introspection endpoints: testing it
against mocks would only test the mocks' idea of those protocols. This is a Starlette
app served by uvicorn on a loopback port, with real joserfc keys, so the server under
test goes through its real HTTP clients (httpx2, authlib) and real signature checks.

What tests need beyond a normal provider: request counters per endpoint (to prove the
JWKS refetch is rate-limited and introspection is cached), :meth:`IdentityProvider.rotate`
(key rotation without a restart), ``down`` (an outage) and ``honour_expiry`` (a lax
provider that still calls an expired opaque token active), ``jwks_body`` (a hostile
or broken provider streaming a JWKS body of its choosing), :meth:`revoke` and :meth:`update`.
"""

from __future__ import annotations

import base64
import contextlib
import secrets
import time
import warnings
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from types import EllipsisType
from typing import Any
from urllib.parse import parse_qs, unquote

from joserfc import jwt
from joserfc.errors import SecurityWarning
from joserfc.jwk import ECKey, OKPKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from asgi_adminstats.auth import TokenVerifier

from support.loopback import make_settings, serve

__all__ = [
    "ALGORITHMS",
    "AsymmetricKey",
    "IdentityProvider",
    "identity_provider",
    "token_verifier",
]

AsymmetricKey = RSAKey | ECKey | OKPKey

#: The signing algorithms the provider has a key for, and how to make that key.
ALGORITHMS: dict[str, Callable[[str], AsymmetricKey]] = {
    "RS256": lambda kid: RSAKey.generate_key(2048, parameters={"kid": kid}),
    "ES256": lambda kid: ECKey.generate_key("P-256", parameters={"kid": kid}),
    "EdDSA": lambda kid: OKPKey.generate_key("Ed25519", parameters={"kid": kid}),
}

CLIENT_ID = "adminstats"
CLIENT_SECRET = "introspection-secret-" + "s" * 16


def new_keys(generation: int = 0) -> dict[str, AsymmetricKey]:
    """One fresh key per algorithm; the kid names the generation so a rotation is visible."""
    return {
        alg: make(f"{alg.lower()}-g{generation}-{secrets.token_hex(4)}")
        for alg, make in ALGORITHMS.items()
    }


class IdentityProvider:
    """Discovery, JWKS and RFC 7662 introspection, with knobs for the tests.

    ``requests`` counts every request per endpoint (``discovery``, ``jwks``,
    ``introspect``), answered or not: what matters to a provider under load is how often
    it is asked, not how often it could answer.
    """

    def __init__(self, *, client_id: str = CLIENT_ID, client_secret: str = CLIENT_SECRET) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.generation = 0
        self.keys: dict[str, AsymmetricKey] = new_keys(self.generation)
        self.requests: Counter[str] = Counter()
        #: Introspection calls refused for bad client credentials (answered 401).
        self.rejected_clients = 0
        #: True: every endpoint answers 503, as a provider in an outage does.
        self.down = False
        #: False: introspection keeps calling an expired opaque token active (a lax
        #: provider), so the tests can show the verifier checks ``exp`` itself.
        self.honour_expiry = True
        #: When set, discovery names this issuer instead of its own (an IdP mix-up).
        self.advertised_issuer: str | None = None
        #: When set, ``/jwks`` streams this body instead (an endless body, a slow drip),
        #: with ``jwks_headers`` (a Content-Length it does not keep, ...).
        self.jwks_body: Callable[[], AsyncIterator[bytes]] | None = None
        self.jwks_headers: dict[str, str] = {}
        #: Bytes of ``jwks_body`` handed to the server so far (what the verifier made it send).
        self.jwks_streamed = 0
        self._opaque: dict[str, dict[str, Any]] = {}
        self._base_url: str | None = None
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self._discovery),
                Route("/jwks", self._jwks),
                Route("/introspect", self._introspect, methods=["POST"]),
            ]
        )

    # --- addresses -------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``: also the issuer, so no trailing slash."""
        if self._base_url is None:
            raise RuntimeError("the identity provider is not serving yet")
        return self._base_url

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/jwks"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    def introspection_settings(self, **extra: Any) -> dict[str, Any]:
        """Settings overrides for introspection only (make_settings sets a secret)."""
        return {
            "jwt_secret": None,
            "introspection_url": self.introspection_url,
            "introspection_client_id": CLIENT_ID,
            "introspection_client_secret": CLIENT_SECRET,
            **extra,
        }

    # --- controls --------------------------------------------------------------------

    def rotate(self) -> dict[str, AsymmetricKey]:
        """Replace every key; the old ones leave the JWKS at once. Returns the old keys
        so a test can still sign with them (a token issued just before the rotation)."""
        old = self.keys
        self.generation += 1
        self.keys = new_keys(self.generation)
        return old

    def kid(self, alg: str) -> str:
        kid = self.keys[alg].kid
        assert kid is not None
        return kid

    def public_pem(self, alg: str = "RS256") -> str:
        return self.keys[alg].as_pem(private=False).decode()

    def private_pem(self, alg: str = "RS256") -> str:
        return self.keys[alg].as_pem(private=True).decode()

    def claims(self, sub: str = "alice", *, ttl: float = 600, **extra: Any) -> dict[str, Any]:
        """Claims of an admin access token from this issuer; ``name=None`` drops a claim."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": sub,
            "role": "admin",
            "iat": now,
            "exp": int(now + ttl),
            **extra,
        }
        return {name: value for name, value in claims.items() if value is not None}

    def mint(
        self,
        alg: str,
        claims: Mapping[str, Any],
        *,
        kid: str | EllipsisType | None = ...,
        key: AsymmetricKey | None = None,
        header: Mapping[str, Any] | None = None,
    ) -> str:
        """A JWT signed with the current key for ``alg`` (or ``key``).

        ``kid`` defaults to the signing key's; pass another string to lie about it, or
        ``None`` to leave it out of the header. ``header`` adds fields (``jku``, ...).
        """
        signer = key if key is not None else self.keys[alg]
        fields: dict[str, Any] = {**(header or {}), "alg": alg}
        chosen = signer.kid if kid is ... else kid
        if chosen is not None:
            fields["kid"] = chosen
        with warnings.catch_warnings():
            # "EdDSA is deprecated via RFC 9864": real providers still issue it, and the
            # warning is about the verifier's choice of algorithm, not the issuer's.
            warnings.simplefilter("ignore", SecurityWarning)
            return jwt.encode(fields, dict(claims), signer, algorithms=[alg])

    def opaque(self, claims: Mapping[str, Any]) -> str:
        """An opaque access token (no dots: it never looks like a JWT) that the
        introspection endpoint knows. Its answer holds ``claims`` over ``active``,
        ``iss`` and ``client_id`` ("console", the client it was issued to); a claim
        given as None is left out."""
        token = secrets.token_urlsafe(32)
        assert "." not in token
        self._opaque[token] = dict(claims)
        return token

    def revoke(self, token: str) -> None:
        """What RFC 7009 revocation does: from now on introspection calls it inactive."""
        del self._opaque[token]

    def update(self, token: str, **claims: Any) -> None:
        """Change what introspection answers for a token (a role taken away, ...)."""
        self._opaque[token].update(claims)

    # --- endpoints -------------------------------------------------------------------

    def _unavailable(self) -> Response | None:
        if self.down:
            return Response("down", status_code=503, headers={"Retry-After": "1"})
        return None

    async def _discovery(self, request: Request) -> Response:
        self.requests["discovery"] += 1
        if (down := self._unavailable()) is not None:
            return down
        return JSONResponse(
            {
                "issuer": self.advertised_issuer or self.issuer,
                "jwks_uri": self.jwks_url,
                "introspection_endpoint": self.introspection_url,
                "id_token_signing_alg_values_supported": list(ALGORITHMS),
                "introspection_endpoint_auth_methods_supported": ["client_secret_basic"],
            }
        )

    async def _jwks(self, request: Request) -> Response:
        self.requests["jwks"] += 1
        if (down := self._unavailable()) is not None:
            return down
        if self.jwks_body is not None:
            return StreamingResponse(
                self._counted(self.jwks_body(), request),
                media_type="application/json",
                headers=self.jwks_headers,
            )
        keys = [
            {**key.as_dict(private=False), "alg": alg, "use": "sig"}
            for alg, key in self.keys.items()
        ]
        assert all("d" not in key for key in keys), "a private key in the JWKS"
        return JSONResponse({"keys": keys})

    async def _counted(self, body: AsyncIterator[bytes], request: Request) -> AsyncIterator[bytes]:
        async for chunk in body:
            # uvicorn drops what is sent after the client left, without an error: stop
            # there, so only what reached the client's socket is counted.
            if await request.is_disconnected():
                return
            yield chunk
            self.jwks_streamed += len(chunk)

    async def _introspect(self, request: Request) -> Response:
        self.requests["introspect"] += 1
        if (down := self._unavailable()) is not None:
            return down
        if not self._client_authenticated(request.headers.get("authorization", "")):
            self.rejected_clients += 1
            return JSONResponse(
                {"error": "invalid_client"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="idp"'},
            )
        form = parse_qs((await request.body()).decode())
        token = (form.get("token") or [""])[0]
        claims = self._opaque.get(token)
        if claims is None:
            return JSONResponse({"active": False})
        exp = claims.get("exp")
        if self.honour_expiry and isinstance(exp, int | float) and exp <= time.time():
            return JSONResponse({"active": False})  # RFC 7662 §2.2: expired is inactive
        answer = {"active": True, "iss": self.issuer, "client_id": "console", **claims}
        # A claim given as None is left out: an answer without iss, or without client_id.
        return JSONResponse({name: value for name, value in answer.items() if value is not None})

    def _client_authenticated(self, authorization: str) -> bool:
        """HTTP Basic with the form-encoded client id and secret (RFC 6749 §2.3.1)."""
        scheme, _, credentials = authorization.partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            decoded = base64.b64decode(credentials, validate=True).decode()
        except ValueError:
            return False
        client_id, sep, client_secret = decoded.partition(":")
        return (
            bool(sep)
            and secrets.compare_digest(unquote(client_id).encode(), self.client_id.encode())
            and secrets.compare_digest(unquote(client_secret).encode(), self.client_secret.encode())
        )


@contextlib.asynccontextmanager
async def identity_provider(**kwargs: Any) -> AsyncIterator[IdentityProvider]:
    """A provider serving on 127.0.0.1 and a free port for the duration of the block."""
    idp = IdentityProvider(**kwargs)
    async with serve(idp.app) as address:
        idp._base_url = f"http://{address}"
        yield idp


@contextlib.asynccontextmanager
async def token_verifier(tmp_path: Path, **overrides: Any) -> AsyncIterator[TokenVerifier]:
    """A ``TokenVerifier`` on the test settings with ``overrides``, closed at the end."""
    verifier = TokenVerifier(make_settings(tmp_path, **overrides))
    try:
        yield verifier
    finally:
        await verifier.close()
