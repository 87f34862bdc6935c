"""Security: tokens in the handshake, the first message and other places.

Each test starts a real uvicorn server on loopback and attacks it with real clients;
see tests/helpers/security.py for what every test asserts.

 1. Tokens.
    - A 64 KB token in the ``Authorization`` header or the ``bearer.`` subprotocol is
      refused at once (an HTTP 4xx, or 4401) under the recommended run
      (``asgi_adminstats.server``), uvicorn's plain defaults and each ``--ws``: uvicorn
      0.55 answers 431 (websockets-sansio: earlier releases never answered and held the
      socket open, recorded for uvicorn < 0.55), ``--ws websockets`` 400, and ``--ws
      wsproto`` passes it on to the component, which closes 4401 (``max_token_bytes``).
    - A 64 KB token in the first ``auth`` message: 1009 (``max_message_bytes``), or 4401
      when frames that big are allowed (``max_token_bytes``).
    - Random text and binary-looking tokens (Hypothesis), in every place a token may go:
      4401 "unauthorized: invalid token", nothing logged at ERROR.
    - A token in the query string or a cookie is ignored unless configured
      (``allow_query_token``, ``token_cookie``).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from typing import Any

import pytest
import uvicorn
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from asgi_adminstats import AdminStats, CloseCode
from asgi_adminstats.server import uvicorn_config
from asgi_adminstats.settings import Settings

from helpers.hostile import (
    RawClient,
    assert_serves_healthy_client,
    capture_logs,
    offered_tokens,
)
from helpers.security import CONNECTIONS, url
from support.loopback import ORIGIN, SECRET, client, closed, recv, token
from support.wire import handshake_request

HUGE_TOKEN = "A" * 65536  # the size is the attack: it need not look like a JWT


# =====================================================================================
# 1. Tokens
# =====================================================================================


def _release(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


#: uvicorn 0.55 writes the 431 that websockets prepares for a header line over 8 KiB;
#: earlier websockets-sansio releases never answer it and hold the socket open.
SANSIO_ANSWERS_LONG_HEADERS = _release(uvicorn.__version__) >= (0, 55)


#: What ``--ws auto`` (uvicorn's plain default) picks: websockets-sansio since 0.50 or so.
AUTO_IS_SANSIO = isinstance(AutoWebSocketsProtocol, type) and issubclass(
    AutoWebSocketsProtocol, WebSocketsSansIOProtocol
)


def _uvicorn_options(config: str) -> dict[str, Any]:
    if config == "recommended":  # asgi_adminstats.server.uvicorn_config's, as run() uses
        options = uvicorn_config(None, Settings(jwt_secret=SECRET))
        return {name: getattr(options, name) for name in ("ws", "ws_max_size", "proxy_headers")}
    return {} if config == "defaults" else {"ws": config}


# uvicorn's `--ws websockets` runs on websockets' deprecated legacy module.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.filterwarnings("ignore:The `websockets` implementation is deprecated")
@pytest.mark.parametrize("config", ["recommended", "defaults", "websockets", "wsproto"])
@pytest.mark.parametrize("where", ["header", "subprotocol"])
async def test_64kb_token_in_the_handshake_is_refused_without_hanging(
    server_with: Callable[..., Any], config: str, where: str
) -> None:
    """Refused (an HTTP 4xx, or 4401 after the upgrade) within a bounded time.

    uvicorn answers first where its header limits apply (0.55: 431; ``--ws websockets``:
    400); ``--ws wsproto`` passes the header on and the component refuses the token.
    """
    stats, addr = await server_with(_uvicorn_options(config), connect_burst=2)
    if where == "header":
        headers = {"Authorization": f"Bearer {HUGE_TOKEN}"}
        offer: dict[str, Any] = {"additional_headers": headers}
    else:
        headers = {"Sec-WebSocket-Protocol": f"adminstats.v1, bearer.{HUGE_TOKEN}"}
        offer = {"subprotocols": ["adminstats.v1", f"bearer.{HUGE_TOKEN}"]}
    sansio = config == "recommended" or (config == "defaults" and AUTO_IS_SANSIO)
    if sansio and not SANSIO_ANSWERS_LONG_HEADERS:
        # Recorded upstream behaviour (uvicorn < 0.55, websockets-sansio): no status line,
        # no close, no EOF; the component never sees the request (3 over a burst of 2, yet
        # a good client from the same address connects). The `server` extra needs 0.55.
        assert config == "defaults", "asgi-adminstats[server] requires uvicorn >= 0.55"
        with capture_logs() as logs:
            raws = [await RawClient.open(addr) for _ in range(3)]
            try:
                for raw in raws:
                    await raw.send(handshake_request(addr, headers))
                answers = [await raw.read_available(limit=1.5, quiet=1.5) for raw in raws]
                assert answers == [b"", b"", b""]
                assert not any(raw.eof for raw in raws)
                assert logs.lines(CONNECTIONS) == []
                assert stats.connections == 0
                await assert_serves_healthy_client(addr)
            finally:
                for raw in raws:
                    raw.close()
        return
    started = time.monotonic()
    result: object
    try:
        async with connect(url(addr), origin=ORIGIN, open_timeout=5, **offer) as conn:
            result = await closed(conn)
    except InvalidStatus as exc:
        result = exc.response.status_code
    assert time.monotonic() - started < 6  # open_timeout, then closed()'s 5 s, bound it
    if isinstance(result, int):
        assert 400 <= result < 500, result
    else:
        assert result == (CloseCode.UNAUTHORIZED, "unauthorized: invalid token")
    if isinstance(result, int):  # the refused socket is not kept: EOF after the answer
        raw = await RawClient.open(addr, source="127.0.0.2")
        try:
            await raw.send(handshake_request(addr, headers))
            answer = await raw.read_available(limit=5, quiet=5)
            assert answer.startswith(b"HTTP/1.1 4"), answer[:100]
            assert raw.eof, "the server kept the socket after refusing the handshake"
        finally:
            raw.close()
    await assert_serves_healthy_client(addr, source="127.0.0.3")


async def test_64kb_token_in_the_first_auth_message(start: Any) -> None:
    _, addr = await start()
    async with client(url(addr)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": HUGE_TOKEN}))
        assert await closed(ws) == (CloseCode.MESSAGE_TOO_BIG, "message too big")
    await assert_serves_healthy_client(addr)
    # Where frames that big are allowed, the token limit refuses it.
    _, roomy = await start(max_message_bytes=128 * 1024)
    async with client(url(roomy)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": HUGE_TOKEN}))
        assert await closed(ws) == (CloseCode.UNAUTHORIZED, "unauthorized: invalid token")
    await assert_serves_healthy_client(roomy)


@pytest.fixture
async def lenient(start: Any) -> tuple[AdminStats, str]:
    """One server for a whole Hypothesis run: its attempt limiter lets hundreds through."""
    stats, addr = await start(connect_rate=1000.0, connect_burst=100_000)
    return stats, addr


async def _close_for(addr: str, where: str, tok: str) -> tuple[int, str]:
    if where == "header":
        ws_cm = client(url(addr), additional_headers={"Authorization": f"Bearer {tok}"})
    elif where == "subprotocol":
        ws_cm = client(url(addr), subprotocols=["adminstats.v1", f"bearer.{tok}"])
    else:
        ws_cm = client(url(addr))
    async with ws_cm as ws:
        if where == "message":
            await ws.send(json.dumps({"type": "auth", "token": tok}))
        return await closed(ws)


@hsettings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(offer=offered_tokens())
async def test_random_tokens_close_4401_invalid(
    lenient: tuple[AdminStats, str], offer: tuple[str, str]
) -> None:
    where, tok = offer
    _, addr = lenient
    with capture_logs() as logs:
        code_reason = await _close_for(addr, where, tok)
    assert code_reason == (CloseCode.UNAUTHORIZED, "unauthorized: invalid token")
    failures = [r for r in logs.records if r.levelno >= logging.ERROR or r.exc_info]
    assert failures == [], logs.text
    await assert_serves_healthy_client(addr)


@pytest.mark.parametrize(
    ("settings", "where", "used"),
    [
        pytest.param({}, "query", False, id="query token, default: ignored"),
        pytest.param({"allow_query_token": True}, "query", True, id="query token, allowed"),
        pytest.param({}, "cookie", False, id="cookie, default: ignored"),
        pytest.param({"token_cookie": "session"}, "cookie", False, id="cookie of another name"),
        pytest.param({"token_cookie": "adminstats_token"}, "cookie", True, id="named cookie"),
    ],
)
async def test_query_and_cookie_tokens_only_when_configured(
    start: Any, settings: dict[str, Any], where: str, used: bool
) -> None:
    _, addr = await start(**settings)
    tok = token("carol")
    target = url(addr) + (f"?access_token={tok}" if where == "query" else "")
    cookie = {"Cookie": f"theme=dark; adminstats_token={tok}"} if where == "cookie" else {}
    with capture_logs() as logs:
        async with client(target, additional_headers=cookie) as ws:
            if used:
                hello = await recv(ws)
                assert (hello["type"], hello["user"]) == ("connected", {"sub": "carol"})
            else:  # the server still waits for an auth message: the token was not looked at
                await ws.send('{"type": "ping"}')
                assert await closed(ws) == (
                    CloseCode.UNAUTHORIZED,
                    "unauthorized: expected an auth message",
                )
    if used:
        assert f"token_via={where}" in logs.text
    await assert_serves_healthy_client(addr)
