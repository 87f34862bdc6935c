"""Authentication against panva's oidc-provider, an OpenID-certified server (tests/oidc/).

tests/auth/test_auth_idp.py drives our own provider (tests/helpers/idp.py), whose answers
we wrote; here the tokens, the JWKS, the introspection and revocation answers all come
from an independent implementation, started once for the module on loopback (tests/helpers/oidc.py),
and the component finds it by discovery as a deployment would. Tokens are RFC 9068 JWT
access tokens or opaque ones from the client_credentials grant: a machine client with the
``admin:stats`` scope and no ``sub`` of its own, its audience set by the resource
indicator it asked for. Real uvicorn, real WebSocket clients, exact close codes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from asgi_adminstats import CloseCode

from helpers.oidc import (
    AUDIENCE,
    CLIENT_ID,
    OTHER_AUDIENCE,
    OIDCProvider,
    jose_header,
    oidc_provider,
)
from support.loopback import client, closed, recv, recv_type

UNAUTHORIZED = int(CloseCode.UNAUTHORIZED)
INVALID = (UNAUTHORIZED, "unauthorized: invalid token")
EXPIRED = (UNAUTHORIZED, "unauthorized: token expired")
SHORT_TTL = 2  # seconds: the provider's lifetime for short-* tokens
CACHE_TTL = 1.0  # the component's introspection cache, for the revocation test


@pytest.fixture(scope="module")
def oidc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OIDCProvider]:
    """One provider for the module: each test asks it for tokens of its own."""
    with oidc_provider(tmp_path_factory.mktemp("oidc"), short_ttl=SHORT_TTL) as provider:
        yield provider


def _url(addr: str) -> str:
    return f"ws://{addr}/admin/ws"


async def _outcome(addr: str, tok: str) -> tuple[Any, ...]:
    """("connected", user) when admitted, else the close (code, reason): a token that
    should be refused but is admitted fails at once, with what it was admitted as."""
    async with client(_url(addr), tok=tok) as ws:
        try:
            first = await recv(ws)
        except ConnectionClosed:
            return await closed(ws)
    assert first["type"] == "connected", first
    return ("connected", first["user"])


async def _admitted(addr: str, tok: str) -> None:
    assert await _outcome(addr, tok) == ("connected", {"sub": CLIENT_ID})


# --- JWT access tokens (RFC 9068) ----------------------------------------------------


@pytest.mark.parametrize("form", ["header", "subprotocol"])
@pytest.mark.parametrize(("kind", "alg"), [("jwt-rs256", "RS256"), ("jwt-es256", "ES256")])
async def test_jwt_access_token(
    start: Any, oidc: OIDCProvider, kind: str, alg: str, form: str
) -> None:
    """A client_credentials JWT (``typ: at+jwt``, ``sub`` = the client id) admits the
    client by either token form, found through discovery; the snapshot follows."""
    tok = await oidc.token(kind)
    header = jose_header(tok)
    assert (header["alg"], header["typ"], header["kid"] in oidc.kids) == (alg, "at+jwt", True)
    _, addr = await start(**oidc.settings())
    if form == "header":
        connection = client(_url(addr), tok=tok)
    else:
        protocols = [Subprotocol("adminstats.v1"), Subprotocol(f"bearer.{tok}")]
        connection = client(_url(addr), subprotocols=protocols)
    async with connection as ws:
        hello = await recv(ws)
        assert hello["type"] == "connected", hello
        assert hello["user"] == {"sub": CLIENT_ID}
        snapshot = await recv_type(ws, "stats_update")
        assert {"online", "totals", "system", "meta"} <= set(snapshot["data"])
        if form == "subprotocol":
            assert ws.subprotocol == "adminstats.v1"


async def test_jwt_for_another_audience_is_refused(start: Any, oidc: OIDCProvider) -> None:
    """Same provider, same key, same admin scope, but issued for another resource."""
    other = await oidc.token("jwt-rs256", audience=OTHER_AUDIENCE)
    _, addr = await start(**oidc.settings())
    assert await _outcome(addr, other) == INVALID
    await _admitted(addr, await oidc.token("jwt-rs256"))


async def test_key_rotation_needs_no_restart(start: Any, oidc: OIDCProvider) -> None:
    """The provider rotates its signing keys: a token under a kid the component has not
    seen makes it refetch the JWKS (at most every jwks_refetch_interval), so it is
    admitted by the running component; tokens under the previous, still published key
    keep working."""
    before = await oidc.token("jwt-rs256")
    _, addr = await start(**oidc.settings(jwks_refetch_interval=0.05))
    await _admitted(addr, before)  # the JWKS of the first generation is now cached
    old_kids = list(oidc.kids)
    new_kids = await oidc.rotate()
    assert set(new_kids).isdisjoint(old_kids)
    rs256, es256 = await oidc.token("jwt-rs256"), await oidc.token("jwt-es256")
    assert [jose_header(rs256)["kid"], jose_header(es256)["kid"]] == new_kids
    await asyncio.sleep(0.1)  # past jwks_refetch_interval since the first fetch
    await _admitted(addr, rs256)
    await _admitted(addr, es256)
    await _admitted(addr, before)


async def test_expiry_set_by_the_provider_closes_the_session(
    start: Any, oidc: OIDCProvider
) -> None:
    """A JWT with the provider's short lifetime: ``token_expiring`` at once (the refresh
    margin is longer than the lifetime) naming the provider's ``exp``, then 4401 "token
    expired" at that time; presented again, it is refused as expired."""
    tok = await oidc.token("short-jwt")
    _, addr = await start(**oidc.settings())
    async with client(_url(addr), tok=tok) as ws:
        assert (await recv(ws))["type"] == "connected"
        warning = await recv_type(ws, "token_expiring")
        expires_at = datetime.fromisoformat(warning["expiresAt"]).timestamp()
        assert expires_at == jose_header(tok, part=1)["exp"], warning
        assert await closed(ws, timeout=SHORT_TTL + 2) == EXPIRED
    assert await _outcome(addr, tok) == EXPIRED


# --- opaque tokens: RFC 7662 introspection, RFC 7009 revocation ----------------------


async def test_opaque_client_credentials_token(start: Any, oidc: OIDCProvider) -> None:
    """The provider's introspection answer for a client_credentials token has no ``sub``
    (there is no end user), only ``client_id``: that is the subject."""
    tok = await oidc.token("opaque")
    assert "." not in tok  # not a JWT: only introspection can tell what it is
    answer = await oidc.introspect(tok)
    assert answer["active"] is True and "sub" not in answer, answer
    assert (answer["client_id"], answer["aud"]) == (CLIENT_ID, AUDIENCE), answer
    _, addr = await start(**oidc.settings())
    async with client(_url(addr), tok=tok) as ws:
        hello = await recv(ws)
        assert hello["type"] == "connected", hello
        assert hello["user"] == {"sub": CLIENT_ID}
        await recv_type(ws, "stats_update")


async def test_opaque_token_for_another_audience_is_refused(start: Any, oidc: OIDCProvider) -> None:
    """Introspection says active, admin scope, but ``aud`` is another resource."""
    other = await oidc.token("opaque", audience=OTHER_AUDIENCE)
    answer = await oidc.introspect(other)
    assert (answer["active"], answer["aud"]) == (True, OTHER_AUDIENCE), answer
    _, addr = await start(**oidc.settings())
    assert await _outcome(addr, other) == INVALID
    await _admitted(addr, await oidc.token("opaque"))


async def test_revoked_token_closes_the_session(start: Any, oidc: OIDCProvider) -> None:
    """An open session on an opaque token ends with 4401 "invalid token" within the
    introspection cache TTL (plus slack) of its revocation at the provider: the session
    asks again when the cached answer ends. A new session on it is refused at once (an
    inactive answer is never cached)."""
    tok = await oidc.token("opaque")
    _, addr = await start(**oidc.settings(introspection_cache_ttl=CACHE_TTL))
    async with client(_url(addr), tok=tok) as ws:
        assert (await recv(ws))["type"] == "connected"
        await oidc.revoke(tok)
        revoked_at = time.monotonic()
        assert (await oidc.introspect(tok)) == {"active": False}
        code, reason = await closed(ws, timeout=CACHE_TTL + 3)
        waited = time.monotonic() - revoked_at
    assert (code, reason) == INVALID
    assert waited <= CACHE_TTL + 2, f"closed {waited:.1f} s after the revocation"
    assert await _outcome(addr, tok) == INVALID


async def test_opaque_expiry_set_by_the_provider(start: Any, oidc: OIDCProvider) -> None:
    """The ``exp`` of the introspection answer ends the session like a JWT's does; once
    expired the provider calls the token inactive, so it is refused as invalid."""
    tok = await oidc.token("short-opaque")
    _, addr = await start(**oidc.settings())
    async with client(_url(addr), tok=tok) as ws:
        assert (await recv(ws))["type"] == "connected"
        assert await closed(ws, timeout=SHORT_TTL + 2) == EXPIRED
    assert (await oidc.introspect(tok)) == {"active": False}
    assert await _outcome(addr, tok) == INVALID
