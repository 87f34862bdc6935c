"""Security: token expiry and refresh.

Each test starts a real uvicorn server on loopback and attacks it with real clients;
see tests/helpers/security.py for what every test asserts.

 1. Token expiry: ``token_expiring`` ``token_refresh_margin`` before ``exp``, 4401
    "unauthorized: token expired" at ``exp``; a refresh for the same subject extends the
    session, any other token closes 4401.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from asgi_adminstats import CloseCode

from helpers.hostile import assert_serves_healthy_client
from helpers.security import expiring_token, ping_pong, url
from support.loopback import client, closed, recv, recv_type, token

# =====================================================================================
# 1. Token expiry
# =====================================================================================


def iso(moment: float) -> str:
    stamp = datetime.fromtimestamp(moment, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


async def test_token_expiring_then_4401_token_expired_at_exp(start: Any) -> None:
    _, addr = await start(token_refresh_margin=2, jwt_leeway=0)
    tok, exp = expiring_token(3.0)
    async with client(url(addr), tok=tok) as ws:
        assert (await recv(ws))["type"] == "connected"
        warning = await recv_type(ws, "token_expiring", timeout=3)
        warned_at = time.time()
        code_reason = await closed(ws, timeout=3)
        closed_at = time.time()
    assert warning["expiresAt"] == iso(exp)
    assert warned_at == pytest.approx(exp - 2, abs=0.3)  # about 1 s in
    assert code_reason == (CloseCode.UNAUTHORIZED, "unauthorized: token expired")
    assert exp - 0.05 <= closed_at <= exp + 0.5
    await assert_serves_healthy_client(addr)


async def test_refresh_for_the_same_subject_outlives_the_old_exp(start: Any) -> None:
    _, addr = await start(token_refresh_margin=2.5, jwt_leeway=0)
    tok, exp = expiring_token(3.0)
    async with client(url(addr), tok=tok) as ws:
        assert (await recv(ws))["type"] == "connected"
        await recv_type(ws, "token_expiring", timeout=3)
        await ws.send(json.dumps({"type": "auth", "token": token("alice", ttl=600)}))
        await asyncio.sleep(max(0.0, exp + 0.7 - time.time()))
        await ping_pong(ws)  # past the old exp, still served
        assert ws.close_code is None
    await assert_serves_healthy_client(addr)


@pytest.mark.parametrize(
    ("new_token", "reason"),
    [
        pytest.param(
            lambda: token("mallory"),
            "unauthorized: token for another subject",
            id="another subject",
        ),
        pytest.param(lambda: "not-a-token", "unauthorized: invalid token", id="garbage"),
        pytest.param(lambda: expiring_token(-60)[0], "unauthorized: token expired", id="expired"),
    ],
)
async def test_refresh_with_any_other_token_closes_4401(
    start: Any, new_token: Callable[[], str], reason: str
) -> None:
    _, addr = await start(token_refresh_margin=2.5, jwt_leeway=0)
    tok, _ = expiring_token(3.0)
    async with client(url(addr), tok=tok) as ws:
        assert (await recv(ws))["type"] == "connected"
        await recv_type(ws, "token_expiring", timeout=3)
        await ws.send(json.dumps({"type": "auth", "token": new_token()}))
        assert await closed(ws, timeout=1) == (CloseCode.UNAUTHORIZED, reason)
    await assert_serves_healthy_client(addr)
