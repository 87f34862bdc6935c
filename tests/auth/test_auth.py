"""Authentication: every token source, and every way a token can be wrong."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import time
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import OctKey

from asgi_adminstats import AuthError, CloseCode, Identity, mint_token

from support.loopback import SECRET, client, closed, recv, token

UNAUTHORIZED = CloseCode.UNAUTHORIZED


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _signed(claims: dict[str, Any], secret: str = SECRET) -> str:
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(secret))


def _claims(**extra: Any) -> dict[str, Any]:
    return {"sub": "alice", "role": "admin", "exp": int(time.time()) + 600, **extra}


BAD_TOKENS = {
    "bad signature": _signed(_claims(), "another-secret-" + "z" * 32),
    "expired": _signed(_claims(exp=int(time.time()) - 3600)),
    "no exp": _signed({"sub": "alice", "role": "admin"}),
    "no sub": _signed({"role": "admin", "exp": int(time.time()) + 600}),
    "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(_claims()) + ".",
    "garbage": "not-a-token",
    "random bytes": base64.urlsafe_b64encode(bytes(range(256))).decode(),
}


async def _close_of(addr: str, tok: str, **kwargs: Any) -> tuple[int, str]:
    async with client(f"ws://{addr}/admin/ws", tok=tok, **kwargs) as ws:
        return await closed(ws)


@pytest.mark.parametrize("name", sorted(BAD_TOKENS))
async def test_bad_tokens_close_4401(start: Any, name: str) -> None:
    _, addr = await start()
    code, reason = await _close_of(addr, BAD_TOKENS[name])
    expected = "unauthorized: token expired" if name == "expired" else "unauthorized: invalid token"
    assert (code, reason) == (UNAUTHORIZED, expected)


async def test_token_over_max_token_bytes_closes_4401(start: Any) -> None:
    _, addr = await start(max_token_bytes=1024)
    long_but_valid = token(roles=["admin", "x" * 1500])
    assert await _close_of(addr, long_but_valid) == (UNAUTHORIZED, "unauthorized: invalid token")


async def test_wrong_issuer_and_audience(start: Any) -> None:
    _, addr = await start(jwt_issuer="https://idp.example.com", jwt_audience="adminstats")
    good = mint_token(SECRET, sub="a", issuer="https://idp.example.com", audience="adminstats")
    wrong_iss = mint_token(
        SECRET, sub="a", issuer="https://evil.example.com", audience="adminstats"
    )
    wrong_aud = mint_token(SECRET, sub="a", issuer="https://idp.example.com", audience="other")
    missing = mint_token(SECRET, sub="a")
    for bad in (wrong_iss, wrong_aud, missing):
        assert await _close_of(addr, bad) == (UNAUTHORIZED, "unauthorized: invalid token")
    async with client(f"ws://{addr}/admin/ws", tok=good) as ws:
        assert (await recv(ws))["type"] == "connected"


async def test_leeway_never_admits_an_expired_token(start: Any) -> None:
    """``jwt_leeway`` is clock skew for ``nbf``/``iat``: a token whose ``exp`` has passed
    is refused at the handshake, not accepted and closed at once (issue 15, item 8)."""
    _, addr = await start(jwt_leeway=60)
    just_expired = _signed(_claims(exp=int(time.time()) - 10))
    received: list[str | bytes] = []
    async with client(f"ws://{addr}/admin/ws", tok=just_expired) as ws:
        with contextlib.suppress(Exception):  # the close; every wait is bounded
            async with asyncio.timeout(5):
                received.extend([frame async for frame in ws])
    assert received == []  # not `connected` (and a snapshot) first, as before
    assert (ws.close_code, ws.close_reason) == (UNAUTHORIZED, "unauthorized: token expired")
    not_yet_valid = _signed(_claims(nbf=int(time.time()) + 10))
    async with client(f"ws://{addr}/admin/ws", tok=not_yet_valid) as ws:
        assert (await recv(ws))["type"] == "connected"


@pytest.mark.parametrize("claims", [{"role": "player"}, {"roles": ["player", "mod"]}, {}])
async def test_no_admin_role_closes_4403(start: Any, claims: dict[str, Any]) -> None:
    _, addr = await start()
    tok = _signed({"sub": "bob", "exp": int(time.time()) + 600, **claims})
    assert await _close_of(addr, tok) == (CloseCode.FORBIDDEN, "forbidden: admin role required")


async def test_admin_in_roles_list(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token(roles=["player", "admin"])) as ws:
        assert (await recv(ws))["type"] == "connected"


async def test_custom_admin_rule(start: Any) -> None:
    _, addr = await start(admin_rule=lambda claims: "admin:stats" in claims.get("scope", ""))
    allowed = _signed({"sub": "svc", "exp": int(time.time()) + 60, "scope": "read admin:stats"})
    async with client(f"ws://{addr}/admin/ws", tok=allowed) as ws:
        assert (await recv(ws))["type"] == "connected"
    assert await _close_of(addr, token()) == (CloseCode.FORBIDDEN, "forbidden: admin role required")


async def test_token_in_subprotocol_selects_ours_and_is_not_echoed(start: Any) -> None:
    _, addr = await start()
    tok = token()
    async with client(
        f"ws://{addr}/admin/ws", subprotocols=["adminstats.v1", f"bearer.{tok}"]
    ) as ws:
        assert ws.subprotocol == "adminstats.v1"
        assert ws.response is not None
        assert tok not in str(ws.response.headers)
        assert (await recv(ws))["type"] == "connected"


async def test_first_message_auth(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": token("carol")}))
        hello = await recv(ws)
    assert hello["user"] == {"sub": "carol"}


async def test_first_message_other_than_auth_closes_4401(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws") as ws:
        await ws.send('{"type": "ping"}')
        assert await closed(ws) == (UNAUTHORIZED, "unauthorized: expected an auth message")


async def test_first_message_with_bad_token_closes_4401(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws") as ws:
        await ws.send(json.dumps({"type": "auth", "token": BAD_TOKENS["bad signature"]}))
        assert await closed(ws) == (UNAUTHORIZED, "unauthorized: invalid token")


async def test_missing_token_times_out_4408(start: Any) -> None:
    _, addr = await start(auth_timeout=0.3)
    async with client(f"ws://{addr}/admin/ws") as ws:
        started = time.monotonic()
        assert await closed(ws) == (CloseCode.TIMEOUT, "timeout: no auth message")
    assert time.monotonic() - started < 3


async def test_new_token_for_same_subject_keeps_session(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token("alice")) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "auth", "token": token("alice", ttl=7200)}))
        await ws.send('{"type": "ping"}')
        while (message := await recv(ws))["type"] != "pong":
            assert message["type"] == "stats_update"


async def test_token_for_another_subject_closes_4401(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token("alice")) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "auth", "token": token("mallory")}))
        assert await closed(ws) == (UNAUTHORIZED, "unauthorized: token for another subject")


async def test_tokens_never_reach_the_logs(start: Any, caplog: pytest.LogCaptureFixture) -> None:
    _, addr = await start()
    good, bad = token(), BAD_TOKENS["bad signature"]
    with caplog.at_level(logging.DEBUG):
        async with client(f"ws://{addr}/admin/ws", tok=good) as ws:
            await recv(ws)
        await _close_of(addr, bad)
    # The server's loggers only: the client library logs its own request headers.
    server_log = "\n".join(
        r.getMessage() for r in caplog.records if r.name.startswith(("asgi_adminstats", "uvicorn"))
    )
    assert "connection accepted: sub=alice client=127.0.0.1" in server_log
    assert "connection rejected: reason=invalid sub=- client=127.0.0.1 code=4401" in server_log
    assert "token rejected: BadSignatureError" in server_log
    for tok in (good, bad):
        for part in tok.split("."):
            assert part not in server_log


# --- claims a validly signed token may still carry (issue 15, item 6) -----------------


@pytest.mark.parametrize(
    "claims",
    [
        {"sub": "\ud800", "exp": 2e9},
        {"sub": "a" * 256, "exp": 2e9},
        {"sub": "", "exp": 2e9},
        {"sub": 5, "exp": 2e9},
        {"sub": None, "exp": 2e9},
        {"sub": "alice", "exp": 10**400},
        {"sub": "alice", "exp": -(10**400)},
        {"sub": "alice", "exp": float("nan")},
        {"sub": "alice", "exp": float("inf")},
        {"sub": "alice", "exp": "2000000000"},
        {"sub": "alice", "exp": True},
        {"sub": "alice", "exp": [2e9]},
        {"sub": "alice", "exp": 253_402_300_800},
    ],
    ids=repr,
)
def test_identity_refuses_claims_it_cannot_use(claims: dict[str, Any]) -> None:
    with pytest.raises(AuthError) as err:
        Identity.verified(claims, now=1e9)
    assert (err.value.code, err.value.reason) == (UNAUTHORIZED, "unauthorized: invalid token")


@pytest.mark.parametrize("exp", [1e9, 1e9 - 0.5, 0])
def test_identity_refuses_an_exp_at_or_before_now_without_leeway(exp: float) -> None:
    with pytest.raises(AuthError) as err:
        Identity.verified({"sub": "alice", "exp": exp}, now=1e9)
    assert (err.value.reason, err.value.category) == ("unauthorized: token expired", "expired")


def test_identity_takes_the_longest_subject_and_no_exp() -> None:
    longest = "\U0001f600" * 255  # 255 characters, 1020 UTF-8 bytes
    identity = Identity.verified({"sub": longest, "exp": 1e9 + 1}, now=1e9)
    assert (identity.sub, identity.exp) == (longest, 1e9 + 1)
    assert Identity.verified({"sub": "svc"}, now=1e9).exp is None  # introspection may omit it
