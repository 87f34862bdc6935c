"""Security: origins, connection floods, capacity and message floods.

Each test starts a real uvicorn server on loopback and attacks it with real clients;
see tests/helpers/security.py for what every test asserts.

 1. Origins (cross-site WebSocket hijacking): exact ``scheme://host[:port]`` match,
    so ``null``, another scheme or port, suffix/prefix/userinfo tricks get 403 before the
    upgrade; a missing Origin is allowed unless ``allow_missing_origin=False``.
 2. Connection floods: per client address, ``connect_burst`` then ``connect_rate``; over
    it, 429 with ``Retry-After`` before accept, while other addresses connect.
    ``X-Forwarded-For``/``Forwarded`` count only from ``trusted_proxies`` (rightmost
    untrusted hop), so spoofing them neither escapes the limit nor frames another address.
    Open (deployment): uvicorn's default ``--proxy-headers`` believes X-Forwarded-For from
    127.0.0.1 before the component looks, whatever ``trusted_proxies`` says.
 3. Capacity: ``max_connections`` (authenticated sessions; sockets still authenticating
    have their own budget, ``max_pending``: tests/admission/test_admission.py) and
    ``max_connections_per_subject``, also under simultaneous authentication: 1013.
 4. Message floods: ``message_rate``/``message_burst``, binary frames included: 4429;
    a binary frame alone gets ``error`` ``bad_message``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from asgi_adminstats import CloseCode

from helpers.hostile import (
    assert_serves_healthy_client,
    attempt,
    capture_logs,
)
from helpers.security import CONNECTIONS, ping_pong, url
from support.loopback import ORIGIN, client, closed, recv, recv_type, token


async def messages_until_closed(ws: ClientConnection, timeout: float = 5.0) -> list[Any]:
    """Everything the server sends until it closes (bounded by ``timeout``)."""
    received: list[Any] = []
    with contextlib.suppress(ConnectionClosed, TimeoutError):
        async with asyncio.timeout(timeout):
            async for raw in ws:
                received.append(json.loads(raw))
    assert ws.close_code is not None, "the server did not close the connection"
    return received


# =====================================================================================
# 1. Origins
# =====================================================================================


ADMIN_ORIGIN = "https://admin.example.com"


@pytest.mark.parametrize(
    ("origin", "settings", "status"),
    [
        pytest.param(ADMIN_ORIGIN, {}, 101, id="allowed"),
        pytest.param("null", {}, 403, id="null (sandboxed frame, file:)"),
        pytest.param("http://admin.example.com", {}, 403, id="other scheme"),
        pytest.param("https://admin.example.com:8443", {}, 403, id="other port"),
        pytest.param("https://admin.example.com:443", {}, 403, id="explicit port: no match"),
        pytest.param("https://admin.example.com.evil.com", {}, 403, id="suffix attack"),
        pytest.param("https://evil-admin.example.com", {}, 403, id="prefix attack"),
        pytest.param("https://admin.example.com@evil.com", {}, 403, id="userinfo trick"),
        pytest.param("https://evil.admin.example.com", {}, 403, id="subdomain"),
        pytest.param("https://example.com", {}, 403, id="parent domain"),
        pytest.param(f"{ADMIN_ORIGIN}, https://evil.com", {}, 403, id="list"),
        pytest.param(None, {}, 101, id="missing: allowed by default"),
        pytest.param(None, {"allow_missing_origin": False}, 403, id="missing: refused"),
    ],
)
async def test_origin_must_match_exactly(
    start: Any, origin: str | None, settings: dict[str, Any], status: int
) -> None:
    _, addr = await start(allowed_origins=(ORIGIN, ADMIN_ORIGIN), **settings)
    with capture_logs() as logs:
        try:
            async with client(url(addr), tok=token(), origin=origin) as ws:
                assert (await recv(ws))["type"] == "connected"
                assert (await recv_type(ws, "stats_update"))["type"] == "stats_update"
                seen = 101
        except InvalidStatus as exc:
            seen = exc.response.status_code
            assert exc.response.body == b"forbidden origin"
    assert seen == status
    if status == 403:
        assert logs.lines(CONNECTIONS) == [
            "connection rejected: reason=origin client=127.0.0.1 code=403"
        ]
    await assert_serves_healthy_client(addr)


# =====================================================================================
# 2. Connection floods
# =====================================================================================


BURST, RATE = 5, 0.25  # 5 at once, then one every 4 s: a flood of 20 outruns the refill


async def test_connection_flood_from_one_address_gets_429_before_accept(start: Any) -> None:
    _, addr = await start(connect_burst=BURST, connect_rate=RATE)
    with capture_logs() as logs:
        started = time.monotonic()
        flood = [await attempt(addr) for _ in range(20)]
        elapsed = time.monotonic() - started
        # Another address is not limited, while this one still is.
        await assert_serves_healthy_client(addr, source="127.0.0.2")
        assert (await attempt(addr))[0] == 429
    assert elapsed < 1 / RATE, "the flood was too slow for the counts below"
    assert [status for status, _, _ in flood] == [101] * BURST + [429] * 15
    for _, headers, body in flood[BURST:]:
        assert body == b"too many connection attempts"
        assert re.fullmatch(r"[0-9]+", headers["Retry-After"])
        assert 1 <= int(headers["Retry-After"]) <= 1 / RATE
    assert int(flood[BURST][1]["Retry-After"]) == 1 / RATE  # the bucket was just emptied
    rejected = [line for line in logs.lines(CONNECTIONS) if "reason=rate" in line]
    assert rejected == ["connection rejected: reason=rate client=127.0.0.1 code=429"] * 16


def _forwarded(header: str, *hops: str) -> dict[str, str]:
    if header == "Forwarded":
        return {header: ", ".join(f"for={hop}" for hop in hops)}
    return {header: ", ".join(hops)}


#: uvicorn's own X-Forwarded-For handling off, so the component alone reads the headers
#: (uvicorn's default trusts them from 127.0.0.1: see the last case below).
NO_PROXY_HEADERS = {"proxy_headers": False}


@pytest.mark.parametrize("header", ["X-Forwarded-For", "Forwarded"])
async def test_behind_a_trusted_proxy_each_client_address_is_limited(
    server_with: Callable[..., Any], header: str
) -> None:
    _, addr = await server_with(
        NO_PROXY_HEADERS,
        connect_burst=BURST,
        connect_rate=RATE,
        trusted_proxies=("127.0.0.1",),
        forwarded_header=header.lower(),  # the one header this proxy writes
    )
    with capture_logs() as logs:
        # The attacker writes a different left-hand hop each time; the proxy appends the
        # address it saw (203.0.113.7), and that rightmost untrusted hop is what counts.
        flood = [
            (await attempt(addr, headers=_forwarded(header, f"198.51.100.{i}", "203.0.113.7")))[0]
            for i in range(10)
        ]
        neighbour = await attempt(addr, headers=_forwarded(header, "203.0.113.8"))
    assert flood == [101] * BURST + [429] * 5
    assert neighbour[0] == 101
    assert [line for line in logs.lines(CONNECTIONS) if "reason=rate" in line] == [
        "connection rejected: reason=rate client=203.0.113.7 code=429"
    ] * 5
    await assert_serves_healthy_client(addr)  # the proxy's own address: its own bucket


@pytest.mark.parametrize(
    ("uvicorn", "trusted", "source"),
    [
        pytest.param(NO_PROXY_HEADERS, (), "127.0.0.1", id="no trusted proxies"),
        pytest.param({}, ("127.0.0.1",), "127.0.0.2", id="peer is not the trusted proxy"),
        pytest.param(
            {},
            (),
            "127.0.0.1",
            id="uvicorn defaults, loopback peer",
            marks=pytest.mark.xfail(
                strict=True,
                reason="uvicorn's defaults (proxy_headers=True, forwarded_allow_ips="
                "'127.0.0.1,::1') rewrite scope['client'] from X-Forwarded-For before the "
                "component runs: with trusted_proxies=() a client whose TCP peer is "
                "loopback (a local proxy that passes the header through) picks its "
                "address freely and escapes the per-address limit",
            ),
        ),
    ],
)
async def test_spoofed_forwarded_headers_do_not_escape_the_limit(
    server_with: Callable[..., Any],
    uvicorn: Mapping[str, Any],
    trusted: tuple[str, ...],
    source: str,
) -> None:
    _, addr = await server_with(
        uvicorn, connect_burst=BURST, connect_rate=RATE, trusted_proxies=trusted
    )
    with capture_logs() as logs:
        statuses = []
        for i in range(10):
            spoof = {"X-Forwarded-For": f"203.0.113.{i}", "Forwarded": f"for=198.51.100.{i}"}
            statuses.append((await attempt(addr, source=source, headers=spoof))[0])
    assert statuses == [101] * BURST + [429] * 5
    assert [line for line in logs.lines(CONNECTIONS) if "reason=rate" in line] == [
        f"connection rejected: reason=rate client={source} code=429"
    ] * 5
    await assert_serves_healthy_client(addr, source="127.0.0.3")


# =====================================================================================
# 3. Capacity
# =====================================================================================


SERVER_FULL = (CloseCode.TRY_AGAIN_LATER, "try again later: server full")


SUBJECT_FULL = (CloseCode.TRY_AGAIN_LATER, "try again later: too many connections for this user")


async def test_max_connections_closes_the_next_one_1013(start: Any) -> None:
    _, addr = await start(max_connections=3)
    async with contextlib.AsyncExitStack() as stack:
        held = [
            await stack.enter_async_context(client(url(addr), tok=token(f"admin{i}")))
            for i in range(3)
        ]
        for ws in held:
            assert (await recv(ws))["type"] == "connected"
        async with client(url(addr), tok=token("admin3")) as fourth:
            assert await closed(fourth) == SERVER_FULL
        for ws in held:  # untouched
            await ping_pong(ws)
    await assert_serves_healthy_client(addr)  # the slots are free again


async def test_sockets_still_authenticating_do_not_count_toward_max_connections(
    start: Any,
) -> None:
    # They have their own budget (max_pending, tests/admission/test_admission.py).
    _, addr = await start(max_connections=3, auth_timeout=1.0)
    async with contextlib.AsyncExitStack() as stack:
        pending = [await stack.enter_async_context(client(url(addr))) for _ in range(3)]
        async with client(url(addr), tok=token()) as admin:
            assert (await recv(admin))["type"] == "connected"
        for ws in pending:
            assert await closed(ws) == (CloseCode.TIMEOUT, "timeout: no auth message")
    await assert_serves_healthy_client(addr)


async def test_max_connections_per_subject_closes_1013_and_spares_others(start: Any) -> None:
    _, addr = await start(max_connections_per_subject=2)
    async with (
        client(url(addr), tok=token("alice")) as first,
        client(url(addr), tok=token("alice")) as second,
    ):
        for ws in (first, second):
            assert (await recv(ws))["type"] == "connected"
        async with client(url(addr), tok=token("alice")) as third:
            assert await closed(third) == SUBJECT_FULL
        async with client(url(addr), tok=token("bob")) as bob:
            assert (await recv(bob))["user"] == {"sub": "bob"}
        await ping_pong(first)
    await assert_serves_healthy_client(addr)


async def test_per_subject_cap_holds_under_simultaneous_authentication(start: Any) -> None:
    _, addr = await start(max_connections_per_subject=2)
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(client(url(addr))) for _ in range(6)]
        auth = json.dumps({"type": "auth", "token": token("alice")})
        await asyncio.gather(*(ws.send(auth) for ws in sockets))

        async def outcome(ws: ClientConnection) -> object:
            try:
                return (await recv(ws))["type"]
            except ConnectionClosed:
                return (ws.close_code, ws.close_reason)

        outcomes = await asyncio.gather(*(outcome(ws) for ws in sockets))
    assert outcomes.count("connected") == 2
    assert [o for o in outcomes if o != "connected"] == [SUBJECT_FULL] * 4
    await assert_serves_healthy_client(addr)


# =====================================================================================
# 4. Message floods
# =====================================================================================


RATE_LIMITED = (CloseCode.RATE_LIMITED, "rate limited")


@pytest.mark.parametrize("frame", ['{"type": "ping"}', b'{"type": "ping"}'], ids=["text", "binary"])
async def test_message_flood_closes_4429(start: Any, frame: str | bytes) -> None:
    _, addr = await start(message_rate=2, message_burst=5)
    async with client(url(addr), tok=token()) as ws:
        assert (await recv(ws))["type"] == "connected"
        with contextlib.suppress(ConnectionClosed):
            for _ in range(20):
                await ws.send(frame)
        received = await messages_until_closed(ws)
        assert (ws.close_code, ws.close_reason) == RATE_LIMITED
    replies = [m for m in received if m["type"] in ("pong", "error")]
    assert 1 <= len(replies) <= 6  # the burst (and at most one refill), then the close
    if isinstance(frame, bytes):
        assert {(m["code"], m["message"]) for m in replies} == {
            ("bad_message", "binary frames are not supported")
        }
    await assert_serves_healthy_client(addr)
