"""An open session on an introspected token is asked about again when the cached
answer ends (``introspection_cache_ttl``): revoked closes it, an unreachable
authorization server closes it (fails closed), still active keeps it.

``Credential`` (the session's part that does it) on a real verifier, outbox and loop
timers first, then over a real server and client; the provider is the loopback one
(tests/helpers/idp.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from asgi_adminstats import CloseCode, Identity
from asgi_adminstats.auth import TokenVerifier
from asgi_adminstats.delivery import Close, Outbox
from asgi_adminstats.session import Credential, Expiry

from helpers.idp import CLIENT_ID, CLIENT_SECRET, IdentityProvider, identity_provider
from support.loopback import client, closed, make_settings, recv, recv_type

UNAUTHORIZED = int(CloseCode.UNAUTHORIZED)
INVALID = (UNAUTHORIZED, "unauthorized: invalid token")
EXPIRED = (UNAUTHORIZED, "unauthorized: token expired")
UNAVAILABLE = (UNAUTHORIZED, "unauthorized: authorization server unavailable")
FORBIDDEN = (int(CloseCode.FORBIDDEN), "forbidden: admin role required")
TTL = 0.4


def _identity(sub: str = "ops", *, recheck_in: float | None, exp_in: float = 600) -> Identity:
    now = time.time()
    at = None if recheck_in is None else now + recheck_in
    return Identity(sub=sub, claims={"sub": sub, "exp": now + exp_in}, recheck_at=at)


@pytest.fixture
async def idp() -> AsyncIterator[IdentityProvider]:
    async with identity_provider() as provider:
        yield provider


def _settings(idp: IdentityProvider, **extra: Any) -> dict[str, Any]:
    return {
        "jwt_secret": None,
        "jwks_url": idp.jwks_url,
        "introspection_url": idp.introspection_url,
        "introspection_client_id": CLIENT_ID,
        "introspection_client_secret": CLIENT_SECRET,
        "introspection_cache_ttl": TTL,
        **extra,
    }


@contextlib.asynccontextmanager
async def _credential(
    tmp_path: Path, idp: IdentityProvider
) -> AsyncIterator[tuple[Credential, Outbox, TokenVerifier]]:
    """A ``Credential`` on a real verifier and outbox, as a session makes it."""
    verifier = TokenVerifier(make_settings(tmp_path, **_settings(idp)))
    outbox = Outbox(8)
    expiry = Expiry(
        0.01,
        warn=lambda exp: None,
        expire=lambda: outbox.close(Close(UNAUTHORIZED, "unauthorized: token expired")),
    )
    credential = Credential(verifier, expiry, outbox, client_ip="127.0.0.1", name="c1")
    try:
        yield credential, outbox, verifier
    finally:
        credential.stop()
        await verifier.close()


async def _close_within(outbox: Outbox, seconds: float) -> tuple[int, str] | None:
    try:
        close = await asyncio.wait_for(asyncio.shield(outbox.closing()), seconds)
    except TimeoutError:
        return None
    return close.code, close.reason


async def test_rechecks_at_each_answers_end_until_revoked(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    tok = _admin(idp)
    async with _credential(tmp_path, idp) as (credential, outbox, verifier):
        identity = await verifier.verify(tok)
        credential.keep(tok, identity)
        assert tok not in repr(credential)
        assert await _close_within(outbox, TTL * 2.6) is None
        # The handshake's answer, then one per TTL: at 0.4 and 0.8 s (the next at 1.2 s).
        asked = idp.requests["introspect"]
        assert 2 <= asked <= 3, asked
        idp.revoke(tok)
        assert await _close_within(outbox, TTL + 1) == INVALID
        await asyncio.sleep(TTL * 1.5)
    assert idp.requests["introspect"] == asked + 1, "no check after the close"


@pytest.mark.parametrize(
    ("recheck_in", "exp_in", "closed_by"),
    [(None, 600, None), (0.05, 0.1, EXPIRED), (0.05, 0.9, None)],
    ids=["jwt", "expires-first", "expires-within-the-margin"],
)
async def test_no_recheck_for_a_jwt_or_before_expiry(
    tmp_path: Path,
    idp: IdentityProvider,
    recheck_in: float | None,
    exp_in: float,
    closed_by: tuple[int, str] | None,
) -> None:
    """No re-check: a never-issued token would be refused at once if it were asked about;
    a token expiring first is closed by its expiry, as "token expired"."""
    async with _credential(tmp_path, idp) as (credential, outbox, _):
        credential.keep("never-issued", _identity(recheck_in=recheck_in, exp_in=exp_in))
        assert await _close_within(outbox, 0.3) == closed_by
    assert idp.requests["introspect"] == 0


async def test_stop_and_a_newer_token_cancel_the_pending_check(
    tmp_path: Path, idp: IdentityProvider
) -> None:
    async with _credential(tmp_path, idp) as (credential, outbox, _):
        credential.keep("never-issued-1", _identity(recheck_in=0.05))
        credential.stop()
        credential.keep("never-issued-2", _identity(recheck_in=0.05))
        credential.keep(_admin(idp), _identity(recheck_in=0.1))
        assert await _close_within(outbox, 0.3) is None
    assert idp.requests["introspect"] == 1


async def test_refresh_keeps_the_subject(tmp_path: Path, idp: IdentityProvider) -> None:
    async with _credential(tmp_path, idp) as (credential, *_):
        credential.keep("first", _identity("ops", recheck_in=None))
        assert await credential.refresh(_admin(idp, "ops")) is None
        assert await credential.refresh(_admin(idp, "mallory")) == Close(
            UNAUTHORIZED, "unauthorized: token for another subject"
        )
        assert await credential.refresh("never-issued") == Close(*INVALID)


# --- over a real server ----------------------------------------------------------------


@pytest.fixture
async def addr(start: Any, idp: IdentityProvider) -> str:
    _, address = await start(**_settings(idp, stats_interval=0.2))
    return str(address)


def _admin(idp: IdentityProvider, sub: str = "ops") -> str:
    return idp.opaque({"sub": sub, "role": "admin", "exp": int(time.time()) + 600})


async def _alive(ws: ClientConnection) -> None:
    await ws.send(json.dumps({"type": "ping"}))
    await recv_type(ws, "pong")


@pytest.mark.parametrize("via", ["header", "message"])
async def test_revoked_token_closes_its_open_session(
    addr: str, idp: IdentityProvider, caplog: pytest.LogCaptureFixture, via: str
) -> None:
    """The issue's report: a session opened before its opaque token was revoked kept
    receiving stats (exp 600 s away). Now it is closed 4401 at the answer's end, at
    most ``introspection_cache_ttl`` after the revocation, and the log says why."""
    tok = _admin(idp)
    with caplog.at_level(logging.INFO):
        async with client(f"ws://{addr}/admin/ws", tok=tok if via == "header" else None) as ws:
            if via == "message":
                await ws.send(json.dumps({"type": "auth", "token": tok}))
            hello = await recv(ws)
            assert hello["type"] == "connected"
            await recv_type(ws, "stats_update")
            idp.revoke(tok)
            revoked = time.monotonic()
            assert await closed(ws, timeout=TTL + 3) == INVALID
            assert time.monotonic() - revoked <= TTL + 1.0
    log = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("asgi_adminstats"))
    rechecked = f"connection re-checked: reason=inactive connection={hello['connectionId']}"
    assert f"{rechecked} code=4401" in log
    assert tok not in log
    assert idp.requests["introspect"] == 2


async def test_active_token_keeps_its_session_across_rechecks(
    addr: str, idp: IdentityProvider
) -> None:
    async with client(f"ws://{addr}/admin/ws", tok=_admin(idp)) as ws:
        await recv(ws)
        await asyncio.sleep(TTL * 3.5)
        await _alive(ws)
        await recv_type(ws, "stats_update")
    # One answer at the handshake, then one per TTL (three, give or take the timing).
    assert 3 <= idp.requests["introspect"] <= 5


async def test_unreachable_authorization_server_closes_the_session(
    addr: str, idp: IdentityProvider
) -> None:
    """Fails closed, as the handshake does: the server cannot tell a revoked token from
    a good one, so the session ends with the reason clients retry later on."""
    tok = _admin(idp)
    async with client(f"ws://{addr}/admin/ws", tok=tok) as ws:
        await recv(ws)
        idp.down = True
        assert await closed(ws, timeout=TTL + 3) == UNAVAILABLE
    idp.down = False
    async with client(f"ws://{addr}/admin/ws", tok=tok) as ws:
        assert (await recv(ws))["type"] == "connected"


async def test_admin_role_taken_away_closes_4403(addr: str, idp: IdentityProvider) -> None:
    tok = _admin(idp)
    async with client(f"ws://{addr}/admin/ws", tok=tok) as ws:
        await recv(ws)
        idp.update(tok, role="viewer")
        assert await closed(ws, timeout=TTL + 3) == FORBIDDEN


async def test_refreshed_token_is_the_one_rechecked(addr: str, idp: IdentityProvider) -> None:
    """After an ``auth`` refresh the new token is re-checked: revoking the old one
    leaves the session open, revoking the new one closes it."""
    old, new = _admin(idp), _admin(idp)
    async with client(f"ws://{addr}/admin/ws", tok=old) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "auth", "token": new}))
        await _alive(ws)
        idp.revoke(old)
        await asyncio.sleep(TTL * 2.5)
        await _alive(ws)
        idp.revoke(new)
        assert await closed(ws, timeout=TTL + 3) == INVALID


async def test_jwt_sessions_are_not_rechecked(addr: str, idp: IdentityProvider) -> None:
    async with client(f"ws://{addr}/admin/ws", tok=idp.mint("ES256", idp.claims("jwt"))) as ws:
        await recv(ws)
        await asyncio.sleep(TTL * 2.5)
        await _alive(ws)
    assert idp.requests["introspect"] == 0
