"""Authentication against a real identity provider (tests/helpers/idp.py) over loopback HTTP.

tests/auth/test_auth.py covers the HS256 secret and the token sources; this file covers what
needs a provider: public keys from a PEM, a JWKS or OIDC discovery, key rotation and
outages, the algorithm allow-list against key confusion, and RFC 7662 introspection.
Most tests go through a real server and WebSocket client and assert the exact close
code and reason a client sees; a few call ``TokenVerifier`` directly where only the
verifier's behaviour matters (construction errors, concurrent first use).

A refusal must never take the server down, so tests end by connecting a good client.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey

from asgi_adminstats import AdminStats, CloseCode
from asgi_adminstats.auth import AuthError, TokenVerifier

from helpers.idp import (
    IdentityProvider,
    identity_provider,
    token_verifier,
)
from support.loopback import SECRET, client, closed, make_settings, recv

UNAUTHORIZED = int(CloseCode.UNAUTHORIZED)
INVALID = (UNAUTHORIZED, "unauthorized: invalid token")
EXPIRED = (UNAUTHORIZED, "unauthorized: token expired")
UNAVAILABLE = (UNAUTHORIZED, "unauthorized: authorization server unavailable")
FORBIDDEN = (int(CloseCode.FORBIDDEN), "forbidden: admin role required")
ASYMMETRIC = ("RS256", "ES256", "EdDSA")


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with identity_provider() as provider:
        yield provider


# --- helpers ---------------------------------------------------------------------------


def _jwks(idp: IdentityProvider, **extra: Any) -> dict[str, Any]:
    """Settings overrides for JWKS only: make_settings sets a secret unless told not to."""
    return {"jwt_secret": None, "jwks_url": idp.jwks_url, **extra}


def _url(addr: str) -> str:
    return f"ws://{addr}/admin/ws"


async def _connected(addr: str, tok: str) -> dict[str, Any]:
    """The ``connected`` message; a close instead raises with its code and reason."""
    async with client(_url(addr), tok=tok) as ws:
        hello = await recv(ws)
    assert hello["type"] == "connected", hello
    return hello


async def _close_of(addr: str, tok: str) -> tuple[int, str]:
    async with client(_url(addr), tok=tok) as ws:
        return await closed(ws)


async def _still_serves(addr: str, tok: str, sub: str = "good") -> None:
    """After refusals, outages and floods the server is up and admits a good client."""
    assert (await _connected(addr, tok))["user"] == {"sub": sub}


async def _eventually_admitted(addr: str, tok: str, within: float = 3.0) -> None:
    """Retry ``tok`` until admitted: after an outage the verifier may wait out
    ``jwks_refetch_interval`` (set short by the caller) before asking again."""
    deadline = time.monotonic() + within
    while True:
        async with client(_url(addr), tok=tok) as ws:
            with contextlib.suppress(Exception):
                if (await recv(ws))["type"] == "connected":
                    return
            outcome = await closed(ws)
        assert time.monotonic() < deadline, f"still refused after {within} s: {outcome}"
        await asyncio.sleep(0.1)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64json(data: dict[str, Any]) -> str:
    return _b64(json.dumps(data, separators=(",", ":")).encode())


def _hmac_token(header: dict[str, Any], claims: dict[str, Any], key: bytes) -> str:
    """A JWS signed with HMAC-SHA256 under ``key``, built by hand.

    joserfc refuses to make such a token when ``key`` is a public key PEM
    (``OctKey.import_key`` raises "Asymmetric public keys must not be used as oct
    keys"), which is exactly the forgery the HS/RS confusion tests need.
    """
    signing_input = f"{_b64json(header)}.{_b64json(claims)}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


async def _outcome(verifier: TokenVerifier, tok: str) -> tuple[int, str] | str:
    """The subject, or the close code and reason the verifier would send."""
    try:
        return (await verifier.verify(tok)).sub
    except AuthError as exc:
        return int(exc.code), exc.reason


# --- public keys: JWKS, OIDC discovery, PEM --------------------------------------------


@pytest.mark.parametrize("alg", ASYMMETRIC)
async def test_jwks_accepts_each_asymmetric_algorithm(
    start: Any, idp: IdentityProvider, alg: str
) -> None:
    _, addr = await start(**_jwks(idp))
    hello = await _connected(addr, idp.mint(alg, idp.claims(f"alice-{alg}")))
    assert hello["user"] == {"sub": f"alice-{alg}"}
    assert idp.requests == {"jwks": 1}


async def test_one_jwks_fetch_serves_every_algorithm(start: Any, idp: IdentityProvider) -> None:
    """The JWKS is cached: three key types, many connections, one request."""
    _, addr = await start(**_jwks(idp))
    for alg in ASYMMETRIC * 2:
        await _connected(addr, idp.mint(alg, idp.claims()))
    assert idp.requests == {"jwks": 1}


async def test_oidc_discovery_finds_the_jwks_and_pins_the_issuer(
    start: Any, idp: IdentityProvider
) -> None:
    """With ``oidc_issuer``, ``iss`` is required and must be that issuer: a token from
    another issuer signed with a key we trust is still refused."""
    _, addr = await start(jwt_secret=None, oidc_issuer=idp.issuer)
    for alg in ASYMMETRIC:
        assert (await _connected(addr, idp.mint(alg, idp.claims(alg))))["user"] == {"sub": alg}
    assert idp.requests == {"discovery": 1, "jwks": 1}
    other_issuer = idp.mint("RS256", idp.claims(iss="http://other-idp.example.com"))
    no_issuer = idp.mint("RS256", idp.claims(iss=None))
    slash_issuer = idp.mint("RS256", idp.claims(iss=idp.issuer + "/"))
    for bad in (other_issuer, no_issuer, slash_issuer):
        assert await _close_of(addr, bad) == INVALID
    await _still_serves(addr, idp.mint("ES256", idp.claims("good")))


async def test_discovery_naming_another_issuer_admits_nobody(
    start: Any, idp: IdentityProvider
) -> None:
    """A discovery document for another issuer (a mix-up) is not believed: no JWKS is
    fetched from it, and tokens fail closed (no keys: the provider counts as unavailable)."""
    idp.advertised_issuer = "http://other-idp.example.com"
    _, addr = await start(jwt_secret=None, oidc_issuer=idp.issuer, jwks_refetch_interval=0.2)
    assert await _close_of(addr, idp.mint("RS256", idp.claims())) == UNAVAILABLE
    assert idp.requests["discovery"] >= 1
    assert idp.requests["jwks"] == 0
    idp.advertised_issuer = None  # the provider's configuration is fixed: no restart
    await _eventually_admitted(addr, idp.mint("RS256", idp.claims("good")))


async def test_pem_public_key_needs_no_jwks(start: Any, idp: IdentityProvider) -> None:
    """``jwt_public_key`` alone verifies RS256, with or without a kid, and never calls
    the provider; a token of another key type has no key and is refused."""
    _, addr = await start(jwt_secret=None, jwt_public_key=idp.public_pem("RS256"))
    await _connected(addr, idp.mint("RS256", idp.claims()))
    await _connected(addr, idp.mint("RS256", idp.claims(), kid=None))
    assert await _close_of(addr, idp.mint("ES256", idp.claims())) == INVALID
    assert await _close_of(addr, idp.mint("RS256", idp.claims(), key=_stranger())) == INVALID
    assert sum(idp.requests.values()) == 0
    await _still_serves(addr, idp.mint("RS256", idp.claims("good")))


@pytest.mark.parametrize("alg", ASYMMETRIC)
async def test_private_key_pem_is_refused_at_construction(
    tmp_path: Path, idp: IdentityProvider, alg: str
) -> None:
    """A private key where the public one belongs is a leak waiting to happen: refuse
    it when the component is built (start-up), naming the setting, without echoing it."""
    settings = make_settings(tmp_path, jwt_secret=None, jwt_public_key=idp.private_pem(alg))
    for build in (TokenVerifier, AdminStats):
        with pytest.raises(ValueError, match="jwt_public_key holds a private key") as info:
            build(settings)
        assert "PRIVATE KEY" not in str(info.value)


async def test_public_key_pem_as_the_secret_is_refused_at_construction(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    """The misconfiguration that makes the HS/RS confusion real: the RSA public key
    given as ``jwt_secret`` would let anyone HMAC-sign tokens. joserfc (1.8) refuses to
    use a public key as an HMAC key, so the component fails at construction."""
    settings = make_settings(tmp_path, jwt_secret=idp.public_pem("RS256"))
    with pytest.raises(ValueError, match="Asymmetric public keys must not be used"):
        TokenVerifier(settings)


async def test_garbled_public_key_is_not_called_a_private_key(tmp_path: Path) -> None:
    """An operator who pasted a truncated PEM must be told it is not a public key, not
    sent looking for a private key they never gave."""
    settings = make_settings(tmp_path, jwt_secret=None, jwt_public_key="MIIBIjANBgkqhkiG9w0B")
    with pytest.raises(ValueError, match="jwt_public_key") as info:
        TokenVerifier(settings)
    assert "private key" not in str(info.value)


def _stranger(kid: str = "stranger") -> RSAKey:
    """An RSA key the provider never published."""
    return RSAKey.generate_key(2048, parameters={"kid": kid})


# --- HMAC algorithms and the allow-list ------------------------------------------------


def _hs(alg: str, sub: str = "alice", secret: str = SECRET) -> str:
    claims = {"sub": sub, "role": "admin", "exp": int(time.time()) + 600}
    return jwt.encode({"alg": alg}, claims, OctKey.import_key(secret), algorithms=[alg])


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
async def test_hs384_and_hs512_with_the_secret(start: Any, alg: str) -> None:
    _, addr = await start()
    assert (await _connected(addr, _hs(alg, f"alice-{alg}")))["user"] == {"sub": f"alice-{alg}"}


async def test_algorithm_allow_list_refuses_hs512(start: Any) -> None:
    _, addr = await start(jwt_algorithms=("HS256",))
    assert await _close_of(addr, _hs("HS512")) == INVALID
    await _still_serves(addr, _hs("HS256", "good"))


async def test_alg_none_is_refused_with_a_jwks(start: Any, idp: IdentityProvider) -> None:
    """``none`` in any spelling, with or without a signature, names no configured key
    type: refused before any key is looked up."""
    _, addr = await start(**_jwks(idp))
    claims = _b64json(idp.claims())
    for alg in ("none", "None", "NONE", "nOnE"):
        header = _b64json({"alg": alg, "typ": "JWT", "kid": idp.kid("RS256")})
        for signature in ("", _b64(b"x" * 32)):
            assert await _close_of(addr, f"{header}.{claims}.{signature}") == INVALID
    assert idp.requests["jwks"] == 0
    await _still_serves(addr, idp.mint("RS256", idp.claims("good")))


@pytest.mark.parametrize("with_secret", [False, True], ids=["jwks-only", "secret-and-jwks"])
async def test_hs256_signed_with_the_rsa_public_key_is_refused(
    start: Any, idp: IdentityProvider, with_secret: bool
) -> None:
    """The HS/RS confusion: an attacker HMACs a token with the (public) RSA key PEM,
    hoping the verifier uses the key it finds for the kid as an HMAC secret. Without a
    secret HS256 is not allowed at all; with one, HS256 is checked against it only."""
    overrides = _jwks(idp, jwt_secret=SECRET) if with_secret else _jwks(idp)
    _, addr = await start(**overrides)
    pem = idp.public_pem("RS256").encode()
    for key in (pem, pem.strip()):
        for kid in (idp.kid("RS256"), None):
            header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
            forged = _hmac_token(header, idp.claims("mallory"), key)
            assert await _close_of(addr, forged) == INVALID
    await _still_serves(addr, idp.mint("RS256", idp.claims("good")))
    if with_secret:
        await _still_serves(addr, _hs("HS256", "good"))


async def test_rs256_header_with_an_hmac_signature_is_refused(
    start: Any, idp: IdentityProvider
) -> None:
    """The reverse: claim RS256 but sign with HMAC (under the secret or the PEM); the
    RSA key never verifies an HMAC."""
    _, addr = await start(**_jwks(idp, jwt_secret=SECRET))
    header = {"alg": "RS256", "typ": "JWT", "kid": idp.kid("RS256")}
    for key in (SECRET.encode(), idp.public_pem("RS256").encode()):
        assert await _close_of(addr, _hmac_token(header, idp.claims("mallory"), key)) == INVALID
    await _still_serves(addr, idp.mint("RS256", idp.claims("good")))


# --- claims ---------------------------------------------------------------------------

CLAIM_CASES: dict[str, tuple[dict[str, Any], tuple[int, str] | None]] = {
    "no exp": ({"exp": None}, INVALID),
    "expired beyond leeway": ({"exp": -120}, EXPIRED),
    "nbf in the future": ({"nbf": 120}, INVALID),
    "nbf within leeway": ({"nbf": 10}, None),
    "iat in the future": ({"iat": 120}, INVALID),
    "iat within leeway": ({"iat": 10}, None),
    "wrong aud": ({"aud": "other"}, INVALID),
    "no aud": ({"aud": None}, INVALID),
    "aud list with ours": ({"aud": ["other", "adminstats"]}, None),
}


@pytest.mark.parametrize("case", list(CLAIM_CASES))
async def test_registered_claims(start: Any, idp: IdentityProvider, case: str) -> None:
    """``exp`` required; ``nbf`` and ``iat`` in the future refused beyond the leeway
    (30 s) and accepted within it; ``aud`` must hold ``jwt_audience`` when that is set.
    Times are offsets from now, so the cases hold whenever the test runs."""
    _, addr = await start(**_jwks(idp, jwt_audience="adminstats", jwt_leeway=30))
    changes, expected = CLAIM_CASES[case]
    now = int(time.time())
    claims = idp.claims("claims", aud="adminstats")
    for name, value in changes.items():
        is_time = name in ("exp", "nbf", "iat") and isinstance(value, int)
        claims[name] = now + value if is_time else value
    tok = idp.mint("ES256", {k: v for k, v in claims.items() if v is not None})
    if expected is None:
        assert (await _connected(addr, tok))["user"] == {"sub": "claims"}
    else:
        assert await _close_of(addr, tok) == expected
    await _still_serves(addr, idp.mint("ES256", idp.claims("good", aud="adminstats")))


# --- unknown keys, floods, rotation, outages ------------------------------------------


async def test_token_from_a_key_outside_the_jwks_is_refused(
    start: Any, idp: IdentityProvider
) -> None:
    """A stranger's key with its own kid, with a kid the provider does use, or with no
    kid: none of them finds a key that verifies it."""
    _, addr = await start(**_jwks(idp))
    stranger = _stranger()
    for kid in ("stranger", idp.kid("RS256"), None):
        tok = idp.mint("RS256", idp.claims("mallory"), key=stranger, kid=kid)
        assert await _close_of(addr, tok) == INVALID
    assert idp.requests["jwks"] <= 2
    await _still_serves(addr, idp.mint("RS256", idp.claims("good")))


async def test_key_urls_in_the_token_header_are_never_followed(
    start: Any, idp: IdentityProvider
) -> None:
    """``jku`` and an embedded ``jwk`` let a token name its own key; the verifier must
    use only the configured JWKS, and never fetch the attacker's."""
    _, addr = await start(**_jwks(idp))
    async with identity_provider() as attacker:
        key = attacker.keys["RS256"]
        jku = attacker.mint("RS256", idp.claims("mallory"), header={"jku": attacker.jwks_url})
        embedded = attacker.mint(
            "RS256", idp.claims("mallory"), header={"jwk": key.as_dict(private=False)}
        )
        for tok in (jku, embedded):
            assert await _close_of(addr, tok) == INVALID
        assert sum(attacker.requests.values()) == 0
    await _still_serves(addr, idp.mint("RS256", idp.claims("good")))


async def test_bogus_kid_flood_fetches_the_jwks_at_most_twice(
    start: Any, idp: IdentityProvider
) -> None:
    """100 tokens with 100 made-up kids within ``jwks_refetch_interval``: all refused,
    and the provider is asked for its JWKS at most twice (the first load, one refetch).
    The attempt limit is raised so that only the JWKS rate limit is under test."""
    _, addr = await start(**_jwks(idp, jwks_refetch_interval=5, connect_burst=200))
    await _connected(addr, idp.mint("RS256", idp.claims()))  # the first load
    limit = asyncio.Semaphore(25)

    async def bogus(i: int) -> tuple[int, str]:
        async with limit:
            return await _close_of(addr, idp.mint("RS256", idp.claims(), kid=f"bogus-{i}"))

    outcomes = await asyncio.wait_for(asyncio.gather(*(bogus(i) for i in range(100))), 20)
    assert set(outcomes) == {INVALID}
    assert idp.requests["jwks"] <= 2
    await _still_serves(addr, idp.mint("EdDSA", idp.claims("good")))


async def test_concurrent_first_use_fetches_the_jwks_once(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    """A cold server hit by many tokens at once (a restart under load, or a flood at
    start-up) must not send the provider one JWKS request per token."""
    async with token_verifier(tmp_path, **_jwks(idp, jwks_refetch_interval=5)) as verifier:
        toks = [idp.mint("RS256", idp.claims(), kid=f"bogus-{i}") for i in range(50)]
        outcomes = await asyncio.gather(*(_outcome(verifier, tok) for tok in toks))
        assert set(outcomes) == {INVALID}
        assert await _outcome(verifier, idp.mint("RS256", idp.claims("good"))) == "good"
    assert idp.requests["jwks"] <= 2


async def test_key_rotation_is_picked_up_without_restart(start: Any, idp: IdentityProvider) -> None:
    """After the provider rotates, a token with the new kid triggers a refetch (once the
    refetch interval has passed, long before the cache TTL) and is admitted; a token
    signed with the retired key is refused. A session opened before stays open: tokens
    are checked at the handshake and at refresh, not against each new JWKS."""
    _, addr = await start(**_jwks(idp, jwks_refetch_interval=0.2, jwks_cache_ttl=3600))
    async with client(_url(addr), tok=idp.mint("RS256", idp.claims("before"))) as before:
        assert (await recv(before))["user"] == {"sub": "before"}
        old = idp.rotate()
        await asyncio.sleep(0.3)
        hello = await _connected(addr, idp.mint("RS256", idp.claims("after")))
        assert hello["user"] == {"sub": "after"}
        assert idp.requests["jwks"] == 2
        retired = idp.mint("RS256", idp.claims("before"), key=old["RS256"])
        assert await _close_of(addr, retired) == INVALID
        await before.send('{"type": "ping"}')
        while (message := await recv(before))["type"] != "pong":
            assert message["type"] == "stats_update"
    await _still_serves(addr, idp.mint("EdDSA", idp.claims("good")))


async def test_jwks_down_at_first_use_fails_closed_then_recovers(
    start: Any, idp: IdentityProvider
) -> None:
    """No keys: nobody gets in ("authorization server unavailable": the token may be
    fine, so the client may retry later) and the server stays up; once the provider is
    back, tokens work without a restart."""
    idp.down = True
    _, addr = await start(**_jwks(idp, jwks_refetch_interval=0.2))
    tok = idp.mint("RS256", idp.claims("good"))
    for _ in range(3):
        assert await _close_of(addr, tok) == UNAVAILABLE
    assert idp.requests["jwks"] >= 1
    idp.down = False
    await _eventually_admitted(addr, tok)
    await _still_serves(addr, idp.mint("ES256", idp.claims("good")))


async def test_jwks_outage_is_not_hammered(tmp_path: Path, idp: IdentityProvider) -> None:
    """The rate limit that protects the provider from bogus kids should also hold while
    it is down, when it needs protecting most."""
    idp.down = True
    async with token_verifier(tmp_path, **_jwks(idp, jwks_refetch_interval=5)) as verifier:
        for _ in range(20):
            assert await _outcome(verifier, idp.mint("RS256", idp.claims())) == UNAVAILABLE
    assert idp.requests["jwks"] <= 2


# --- introspection (opaque tokens) ----------------------------------------------------


def _admin(sub: str = "ops", ttl: float = 600, **extra: Any) -> dict[str, Any]:
    return {"sub": sub, "role": "admin", "exp": int(time.time() + ttl), **extra}


async def test_introspection_admits_an_active_admin_token(
    start: Any, idp: IdentityProvider
) -> None:
    _, addr = await start(**idp.introspection_settings())
    hello = await _connected(addr, idp.opaque(_admin("ops")))
    assert hello["user"] == {"sub": "ops"}
    assert idp.requests == {"introspect": 1}
    assert idp.rejected_clients == 0  # authlib sent our client id/secret as HTTP Basic


async def test_inactive_token_is_refused(start: Any, idp: IdentityProvider) -> None:
    _, addr = await start(**idp.introspection_settings())
    assert await _close_of(addr, "never-issued-by-this-provider") == INVALID
    # Two dots but no JWT verifier configured: it is introspected too, and inactive.
    assert await _close_of(addr, "looks.like.jwt") == INVALID
    assert idp.requests == {"introspect": 2}
    await _still_serves(addr, idp.opaque(_admin("good")))


async def test_introspection_down_fails_closed_then_recovers(
    start: Any, idp: IdentityProvider
) -> None:
    """An outage admits nobody, says so (not "invalid token": the token may be fine),
    caches nothing, and the next attempt after recovery is admitted."""
    _, addr = await start(**idp.introspection_settings())
    tok = idp.opaque(_admin("good"))
    idp.down = True
    assert await _close_of(addr, tok) == UNAVAILABLE
    idp.down = False
    await _still_serves(addr, tok)
    assert idp.requests == {"introspect": 2}


async def test_wrong_client_secret_fails_closed(start: Any, idp: IdentityProvider) -> None:
    """The provider refuses our client (401): that is our misconfiguration, never a
    reason to let the token through."""
    _, addr = await start(**idp.introspection_settings(introspection_client_secret="wrong-" * 4))
    assert await _close_of(addr, idp.opaque(_admin())) == UNAVAILABLE
    assert idp.rejected_clients == 1


async def test_active_answer_is_cached(start: Any, idp: IdentityProvider) -> None:
    _, addr = await start(**idp.introspection_settings(introspection_cache_ttl=60))
    tok = idp.opaque(_admin("ops"))
    for _ in range(3):
        await _connected(addr, tok)
    assert idp.requests == {"introspect": 1}


@pytest.mark.parametrize(
    ("honour_expiry", "refusal"),
    [(True, INVALID), (False, EXPIRED)],
    ids=["provider-says-inactive", "lax-provider-says-active"],
)
async def test_cached_answer_never_outlives_the_token(
    start: Any, idp: IdentityProvider, honour_expiry: bool, refusal: tuple[int, str]
) -> None:
    """A token expiring in ~1-2 s with a one-hour cache TTL: the open session is closed
    at ``exp``; the next connection asks the provider again (the cache entry ended at
    ``exp``) and is refused, as inactive by an honest provider, and as expired by the
    verifier's own ``exp`` check when a lax provider still says active."""
    idp.honour_expiry = honour_expiry
    _, addr = await start(**idp.introspection_settings(introspection_cache_ttl=3600))
    exp = int(time.time()) + 2
    tok = idp.opaque({"sub": "ops", "role": "admin", "exp": exp})
    async with client(_url(addr), tok=tok) as ws:
        assert (await recv(ws))["user"] == {"sub": "ops"}
        assert await closed(ws, timeout=5) == EXPIRED
    assert time.time() >= exp - 0.05
    await asyncio.sleep(max(0.0, exp - time.time()) + 0.05)
    assert await _close_of(addr, tok) == refusal
    assert idp.requests == {"introspect": 2}
    await _still_serves(addr, idp.opaque(_admin("good")))


@pytest.mark.parametrize(
    ("scope", "expected"),
    [("read admin:stats", None), ("read", FORBIDDEN), ("admin:stats-extra", FORBIDDEN)],
)
async def test_admin_scope(
    start: Any, idp: IdentityProvider, scope: str, expected: tuple[int, str] | None
) -> None:
    """``admin_scope`` grants access to a token whose space-separated ``scope`` holds
    it exactly (no role needed); a token without it is valid but not an admin: 4403."""
    _, addr = await start(**idp.introspection_settings(admin_scope="admin:stats"))
    tok = idp.opaque({"sub": "svc", "exp": int(time.time()) + 600, "scope": scope})
    if expected is None:
        assert (await _connected(addr, tok))["user"] == {"sub": "svc"}
    else:
        assert await _close_of(addr, tok) == expected
    await _still_serves(addr, idp.opaque(_admin("good")))


async def test_jwts_and_opaque_tokens_side_by_side(start: Any, idp: IdentityProvider) -> None:
    """With a JWKS and introspection both configured, a JWT is verified locally (no
    introspection request) and an opaque token is introspected."""
    _, addr = await start(**{**_jwks(idp), **idp.introspection_settings()})
    await _connected(addr, idp.mint("ES256", idp.claims("jwt-user")))
    assert idp.requests == {"jwks": 1}
    await _connected(addr, idp.opaque(_admin("opaque-user")))
    assert idp.requests == {"jwks": 1, "introspect": 1}
