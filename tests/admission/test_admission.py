"""Admission before a session (issue 15, items 2, 3 and 3b), against real uvicorn servers.

- Sockets that wait for their first ``auth`` message have their own budget
  (``max_pending``, ``max_pending_per_client``), apart from ``max_connections``, which
  counts authenticated sessions only: idle token-less sockets, from one address or many,
  never keep out an admin whose token comes with the handshake. Over the budget: accept,
  then 1013 "try again later: too many pending connections", counted in the metrics
  and logged.
- The client address is IP text or a placeholder, never a forwarded value as written:
  ``not-an-ip sub=root code=1000`` neither reaches the log nor makes a bucket.
- Only ``forwarded_header`` is read from a trusted proxy: a client writing the other
  header chooses neither its bucket nor the address in the log.

uvicorn's own proxy-header handling is off (``proxy_headers=False``) wherever the
component reads the headers itself; otherwise uvicorn would rewrite the peer first.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import Callable, Mapping
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from asgi_adminstats import CloseCode, Settings, SettingsError

from helpers.hostile import assert_serves_healthy_client, attempt, capture_logs
from support.loopback import client, closed, recv, token

CONNECTIONS = "asgi_adminstats.connections"
PENDING_FULL = (CloseCode.TRY_AGAIN_LATER, "try again later: too many pending connections")
SERVER_FULL = (CloseCode.TRY_AGAIN_LATER, "try again later: server full")
NO_PROXY_HEADERS = {"proxy_headers": False}
#: Far more attempts than any test makes: the pending budget is what refuses here.
MANY_ATTEMPTS = {"connect_burst": 500, "connect_rate": 100.0}
BURST, RATE = 5, 0.25  # where the attempt limit is the bucket under test


def url(addr: str) -> str:
    return f"ws://{addr}/admin/ws"


async def scrape(addr: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with httpx2.AsyncClient() as http:
        response = await http.get(f"http://{addr}/admin/ws/metrics")
    assert response.status_code == 200, response.text
    found: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return found


PENDING_REFUSALS = (
    "adminstats_connection_attempts_total",
    (("outcome", "rejected"), ("reason", "pending")),
)


async def open_idle(
    stack: contextlib.AsyncExitStack[Any],
    addr: str,
    source: str,
    headers: Mapping[str, str] | None = None,
) -> ClientConnection:
    """A socket without a token, left idle (closed when ``stack`` closes)."""
    return await stack.enter_async_context(
        client(url(addr), local_addr=(source, 0), additional_headers=dict(headers or {}))
    )


async def refused_at_once(ws: ClientConnection) -> tuple[int, str] | None:
    """The close of a socket the server refused right after the upgrade, else None.

    A pending socket hears nothing for ``auth_timeout`` (long here), so a 1-second
    bounded wait tells the two apart.
    """
    try:
        return await closed(ws, timeout=1.0)
    except AssertionError:
        return None


async def outcomes(sockets: list[ClientConnection]) -> list[tuple[int, str] | None]:
    return list(await asyncio.gather(*(refused_at_once(ws) for ws in sockets)))


async def no_pending(addr: str) -> None:
    """Wait (bounded) until every pending slot is given back: sockets the client closed
    are seen closed by the server a moment later."""
    for _ in range(100):
        if (await scrape(addr))["adminstats_pending_sockets", ()] == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("pending slots were not given back")


# =====================================================================================
# 2. Pending sockets have their own budget
# =====================================================================================


async def test_idle_sockets_fill_the_pending_budget_and_admins_still_connect(
    server_with: Callable[..., Any],
) -> None:
    # Scaled down from the report (999 idle sockets, max_connections=1000): 50 idle
    # sockets against max_connections=30 made the next admin get "server full".
    _, addr = await server_with(
        {},
        max_connections=30,
        max_pending=20,
        max_pending_per_client=5,
        auth_timeout=30.0,
        **MANY_ATTEMPTS,
    )
    sources = ["127.0.0.2"] * 10 + [f"127.0.0.{i}" for i in range(3, 11) for _ in range(5)]
    assert len(sources) == 50
    with capture_logs() as logs:
        async with contextlib.AsyncExitStack() as stack:
            idle = [await open_idle(stack, addr, source) for source in sources]
            # Whatever the pending sockets do: a token in the handshake (a header, the
            # browser's subprotocol) is verified at once, from the flooded address too.
            await assert_serves_healthy_client(addr, source="127.0.0.2")
            offer = [Subprotocol("adminstats.v1"), Subprotocol(f"bearer.{token('bea')}")]
            async with client(url(addr), subprotocols=offer) as ws:
                assert (await recv(ws))["type"] == "connected"
            # 127.0.0.2: 5 pending, 5 over its share; .3 to .5: 5 pending each (20 in
            # all); .6 to .10: the total is used up.
            assert await outcomes(idle) == (
                [None] * 5 + [PENDING_FULL] * 5 + [None] * 15 + [PENDING_FULL] * 25
            )
            during = await scrape(addr)
            # A client that sends its token in a first message waits in the same budget.
            async with client(url(addr), local_addr=("127.0.0.11", 0)) as late:
                assert await refused_at_once(late) == PENDING_FULL
        await no_pending(addr)  # every slot given back
    assert during["adminstats_pending_sockets", ()] == 20
    assert during[PENDING_REFUSALS] == 30
    assert during["adminstats_closes_total", (("code", "1013"),)] == 30
    assert (await scrape(addr))[PENDING_REFUSALS] == 31
    refused = [*sources[5:10], *sources[25:], "127.0.0.11"]
    assert [line for line in logs.lines(CONNECTIONS) if "reason=pending" in line] == [
        f"connection rejected: reason=pending client={ip} code=1013" for ip in refused
    ]


async def test_a_slot_is_given_back_when_its_socket_authenticates_or_fails(
    server_with: Callable[..., Any],
) -> None:
    _, addr = await server_with({}, max_pending=1, max_pending_per_client=1, auth_timeout=30.0)
    auth = json.dumps({"type": "auth", "token": token("carol")})
    for _ in range(3):  # each of these would be refused if a slot were kept
        async with client(url(addr)) as ws:
            await ws.send(auth)
            assert (await recv(ws))["type"] == "connected"
        async with client(url(addr)) as ws:
            await ws.send('{"type": "ping"}')
            assert await closed(ws) == (
                CloseCode.UNAUTHORIZED,
                "unauthorized: expected an auth message",
            )
    async with client(url(addr)) as held, client(url(addr)) as second:
        assert await refused_at_once(second) == PENDING_FULL
        await held.send(auth)
        assert (await recv(held))["type"] == "connected"
        assert (await scrape(addr))["adminstats_pending_sockets", ()] == 0


async def test_max_connections_counts_authenticated_sessions(
    server_with: Callable[..., Any],
) -> None:
    _, addr = await server_with(
        {}, max_connections=2, max_pending=3, max_pending_per_client=3, auth_timeout=30.0
    )
    async with contextlib.AsyncExitStack() as stack:
        idle = [await open_idle(stack, addr, "127.0.0.2") for _ in range(3)]
        for i in range(2):
            ws = await stack.enter_async_context(client(url(addr), tok=token(f"admin{i}")))
            assert (await recv(ws))["type"] == "connected"
        async with client(url(addr), tok=token("admin2")) as third:
            assert await closed(third) == SERVER_FULL
        assert await outcomes(idle) == [None] * 3


@pytest.mark.parametrize("proxy_appends", [False, True], ids=["no proxy hop", "proxy hop"])
async def test_a_random_x_forwarded_for_per_socket_cannot_lock_admins_out(
    server_with: Callable[..., Any], proxy_appends: bool
) -> None:
    # One source address through the trusted "proxy" (127.0.0.1), each socket with its
    # own X-Forwarded-For. Without a hop the proxy wrote, every socket is another client
    # and the total budget holds; with it (what nginx appends), that hop is the client
    # and its own share holds.
    _, addr = await server_with(
        NO_PROXY_HEADERS,
        trusted_proxies=("127.0.0.1",),
        max_connections=30,
        max_pending=20,
        max_pending_per_client=5,
        auth_timeout=30.0,
        **MANY_ATTEMPTS,
    )
    rng = random.Random(15)
    spoofed = [
        f"{rng.randrange(1, 224)}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        for _ in range(50)
    ]
    with capture_logs() as logs:
        async with contextlib.AsyncExitStack() as stack:
            idle = []
            for hop in spoofed:
                value = f"{hop}, 203.0.113.7" if proxy_appends else hop
                idle.append(await open_idle(stack, addr, "127.0.0.1", {"X-Forwarded-For": value}))
            await assert_serves_healthy_client(addr)
            held = 5 if proxy_appends else 20
            assert await outcomes(idle) == [None] * held + [PENDING_FULL] * (50 - held)
            if proxy_appends:  # another client behind the same proxy still gets a slot
                neighbour = {"X-Forwarded-For": "203.0.113.8"}
                async with client(url(addr), additional_headers=neighbour) as ws:
                    await ws.send(json.dumps({"type": "auth", "token": token("dave")}))
                    assert (await recv(ws))["type"] == "connected"
    refusals = [line for line in logs.lines(CONNECTIONS) if "reason=pending" in line]
    if proxy_appends:
        assert refusals == ["connection rejected: reason=pending client=203.0.113.7 code=1013"] * 45
    else:
        assert refusals == [
            f"connection rejected: reason=pending client={hop} code=1013" for hop in spoofed[20:]
        ]


# =====================================================================================
# 3. A forwarded value that is no IP address
# =====================================================================================

NOT_AN_IP = "not-an-ip-{i} sub=root code=1000"


@pytest.mark.parametrize(
    ("uvicorn", "trusted", "logged"),
    [
        # uvicorn's defaults believe X-Forwarded-For from 127.0.0.1 and copy it into
        # scope["client"] as written: the component sees a peer that is no address.
        pytest.param({}, (), "invalid", id="rewritten by uvicorn"),
        # The component reads the header from its trusted proxy: the hop is no client.
        pytest.param(NO_PROXY_HEADERS, ("127.0.0.1",), "127.0.0.1", id="read by the component"),
    ],
)
async def test_a_forwarded_value_that_is_no_ip_is_neither_logged_nor_a_bucket(
    server_with: Callable[..., Any],
    uvicorn: Mapping[str, Any],
    trusted: tuple[str, ...],
    logged: str,
) -> None:
    _, addr = await server_with(
        uvicorn, connect_burst=BURST, connect_rate=RATE, trusted_proxies=trusted
    )
    with capture_logs(["asgi_adminstats"]) as logs:
        statuses = []
        for i in range(10):  # another value each time: one bucket all the same
            headers = {"X-Forwarded-For": NOT_AN_IP.format(i=i)}
            statuses.append((await attempt(addr, headers=headers))[0])
    assert statuses == [101] * BURST + [429] * 5
    assert "not-an-ip" not in logs.text and "sub=root" not in logs.text
    assert [line for line in logs.lines(CONNECTIONS) if "reason=rate" in line] == [
        f"connection rejected: reason=rate client={logged} code=429"
    ] * 5
    await assert_serves_healthy_client(addr, source="127.0.0.3")


# =====================================================================================
# 3b. Only the configured header is believed
# =====================================================================================


@pytest.mark.parametrize(
    ("believed", "proxy_header", "client_header"),
    [
        ("x-forwarded-for", "X-Forwarded-For", "Forwarded"),  # the README's nginx advice
        ("forwarded", "Forwarded", "X-Forwarded-For"),  # an RFC 7239 proxy
    ],
)
async def test_the_header_the_proxy_does_not_write_chooses_nothing(
    server_with: Callable[..., Any], believed: str, proxy_header: str, client_header: str
) -> None:
    _, addr = await server_with(
        NO_PROXY_HEADERS,
        connect_burst=BURST,
        connect_rate=RATE,
        trusted_proxies=("127.0.0.1",),
        forwarded_header=believed,
        max_pending=20,
        max_pending_per_client=2,
        auth_timeout=30.0,
    )

    def headers(i: int) -> dict[str, str]:
        # The client writes its own choice in the header the proxy leaves alone (a new
        # one each time); the proxy writes the address it saw in its own header.
        own = f"for=198.51.100.{i}" if client_header == "Forwarded" else f"198.51.100.{i}"
        seen = "for=203.0.113.7" if proxy_header == "Forwarded" else "203.0.113.7"
        return {client_header: own, proxy_header: seen}

    with capture_logs() as logs:
        # The pending budget: the proxy's hop is the client, whatever the other header says.
        async with contextlib.AsyncExitStack() as stack:
            idle = [await open_idle(stack, addr, "127.0.0.1", headers(100 + i)) for i in range(4)]
            assert await outcomes(idle) == [None, None, PENDING_FULL, PENDING_FULL]
        await no_pending(addr)
        # The attempt limit (4 of the burst of 5 were used above).
        statuses = [(await attempt(addr, headers=headers(i)))[0] for i in range(6)]
    assert statuses == [101] + [429] * 5
    lines = logs.lines(CONNECTIONS)
    assert not [line for line in lines if "198.51.100." in line]
    assert [line for line in lines if "rejected" in line] == [
        "connection rejected: reason=pending client=203.0.113.7 code=1013"
    ] * 2 + ["connection rejected: reason=rate client=203.0.113.7 code=429"] * 5
    await assert_serves_healthy_client(addr, source="127.0.0.3")


# =====================================================================================
# The settings
# =====================================================================================


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        ({"max_pending": 0}, "max_pending"),
        ({"max_pending_per_client": 0}, "max_pending_per_client"),
        ({"max_pending": 5, "max_pending_per_client": 6}, "max_pending_per_client"),
        ({"forwarded_header": "x-real-ip"}, "forwarded_header"),
        ({"forwarded_header": "forwarded, x-forwarded-for"}, "forwarded_header"),
    ],
)
def test_invalid_admission_settings_name_the_setting(changes: dict[str, Any], named: str) -> None:
    with pytest.raises(SettingsError, match=f"'{named}'") as err:
        Settings(jwt_secret="s" * 32, **changes)
    assert err.value.setting == named


def test_admission_settings_defaults_and_environment() -> None:
    defaults = Settings(jwt_secret="s" * 32)
    assert (defaults.max_pending, defaults.max_pending_per_client) == (100, 10)
    assert defaults.max_pending < defaults.max_connections
    assert defaults.forwarded_header == "x-forwarded-for"
    env = {
        "ADMINSTATS_JWT_SECRET": "s" * 32,
        "ADMINSTATS_MAX_PENDING": "40",
        "ADMINSTATS_MAX_PENDING_PER_CLIENT": "4",
        "ADMINSTATS_FORWARDED_HEADER": "Forwarded",
    }
    s = Settings.from_env(env)
    assert (s.max_pending, s.max_pending_per_client, s.forwarded_header) == (40, 4, "Forwarded")
    with pytest.raises(SettingsError, match="ADMINSTATS_FORWARDED_HEADER"):
        Settings.from_env({**env, "ADMINSTATS_FORWARDED_HEADER": "x-real-ip"})
    with pytest.raises(SettingsError, match="ADMINSTATS_MAX_PENDING_PER_CLIENT"):
        Settings.from_env({**env, "ADMINSTATS_MAX_PENDING_PER_CLIENT": "41"})
