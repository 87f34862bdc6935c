"""``AdminStatsClient(deltas=True)``: whole snapshots out of ``stats_delta`` patches, the
same as a client without deltas sees; a bad base asks once for the full snapshot; a
server without deltas leaves it on full snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from asgi_adminstats import protocol
from asgi_adminstats.client import AdminStatsClient

from support.loopback import token

Message = dict[str, Any]


async def next_stats(stream: AdminStatsClient, timeout: float = 5.0) -> Message:
    async with asyncio.timeout(timeout):
        async for message in stream:
            assert message["type"] != "stats_delta", "a patch reached the caller"
            if message["type"] == "stats_update":
                return message
    raise AssertionError("the client stopped")


def snapshot(users: int, recent: list[Message]) -> Message:
    return {
        "online": {"users": users, "players": 3, "connections": 2},
        "totals": {"players": 1250, "villages": 2156},
        "activity": {"recentActions": recent},
        "meta": {"instance": "test-1", "stale": False},
    }


async def test_deltas_yield_what_a_full_client_yields(start: Any) -> None:
    stats, addr = await start(stats_interval=60)
    url = f"ws://{addr}/admin/ws"
    async with (
        AdminStatsClient(url, token=token(), deltas=True) as delta,
        AdminStatsClient(url, token=token()) as plain,
    ):
        await next_stats(delta)
        await next_stats(plain)
        recent: list[Message] = []
        await stats.publish_snapshot(snapshot(0, recent))
        await next_stats(delta)
        await next_stats(plain)
        sent_before = stats.metrics.tally.sent_bytes["stats"]
        for users in range(1, 9):
            if users % 3 == 0:
                recent = [{"id": str(users), "action": "BAN_PLAYER"}, *recent][:5]
            await stats.publish_snapshot(snapshot(users, copy.deepcopy(recent)))
            mine, theirs = await next_stats(delta), await next_stats(plain)
            assert mine["data"] == theirs["data"] == snapshot(users, recent)
            assert isinstance(mine["seq"], int) and "seq" not in theirs
            mine["data"]["online"]["users"] = -1  # the caller's copy: the held one stays
        sent = stats.metrics.tally.sent_bytes["stats"] - sent_before
        full = 8 * len(stats.hub.latest_stats or "")
        # Both clients' frames: the plain one's full snapshots, and under 60 % of that more.
        assert sent < full * 1.6, "the delta client's frames are not much smaller"
        assert delta.last_audit_id == "6"


# --- a scripted server: a bad base, and a server that ignores the offer ----------------


@contextlib.asynccontextmanager
async def scripted(
    script: Callable[[ServerConnection], Any],
) -> AsyncIterator[tuple[str, list[Message], list[list[str]], asyncio.Event]]:
    """A WebSocket server running ``script`` per connection; yields its URL, what
    clients sent, the subprotocols each offered, and an event set on each message."""
    received: list[Message] = []
    offers: list[list[str]] = []
    arrived = asyncio.Event()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None  # the handshake is over when a handler runs
        offers.append(list(ws.request.headers.get_all("Sec-WebSocket-Protocol")))

        async def read() -> None:
            async for raw in ws:
                received.append(json.loads(raw))
                arrived.set()

        reader = asyncio.create_task(read())
        try:
            await script(ws)
            await ws.wait_closed()
        finally:
            reader.cancel()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        yield f"ws://127.0.0.1:{port}/admin/ws", received, offers, arrived


def frame(**fields: Any) -> str:
    return json.dumps({**fields, "timestamp": "2025-01-04T12:00:00.000Z"})


def connected(deltas: bool) -> str:
    extra = {"deltas": True} if deltas else {}
    return frame(type="connected", connectionId="c1", subscriptions=["stats"], **extra)


async def test_a_bad_base_asks_once_for_the_full_snapshot() -> None:
    resync = asyncio.Event()

    async def script(ws: ServerConnection) -> None:
        await ws.send(connected(True))
        await ws.send(frame(type="stats_update", seq=1, data={"a": 1, "b": {"c": 1}}))
        await ws.send(frame(type="stats_delta", seq=2, base=1, data={"b": {"c": 2}}))
        await ws.send(frame(type="stats_delta", seq=4, base=3, data={"a": 9}))  # missed 3
        await ws.send(frame(type="stats_delta", seq=5, base=4, data={"a": 10}))
        await resync.wait()
        await ws.send(frame(type="stats_update", seq=5, data={"a": 10, "b": {"c": 3}}))
        await ws.send(frame(type="stats_delta", seq=6, base=5, data={"b": None}))

    async with (
        scripted(script) as (url, received, offers, arrived),
        AdminStatsClient(url, token="t", subscriptions=["stats"], deltas=True) as c,
    ):
        seen = [(await next_stats(c))["data"] for _ in range(2)]
        await asyncio.wait_for(arrived.wait(), 5)  # the resync request
        resync.set()
        seen += [(await next_stats(c))["data"] for _ in range(2)]
    assert offers == [["adminstats.v1, adminstats.delta"]]
    assert seen == [
        {"a": 1, "b": {"c": 1}},
        {"a": 1, "b": {"c": 2}},
        {"a": 10, "b": {"c": 3}},
        {"a": 10},
    ]
    assert received == [{"type": "subscribe", "subscriptions": ["stats"]}]  # once, not twice


async def test_a_server_without_deltas_leaves_full_snapshots() -> None:
    async def script(ws: ServerConnection) -> None:
        await ws.send(connected(False))
        await ws.send(frame(type="stats_update", data={"a": 1}))
        # Not negotiated: a patch is not applied to anything (nor shown).
        await ws.send(frame(type="stats_delta", seq=2, base=1, data={"a": 2}))
        await ws.send(frame(type="stats_update", data={"a": 3}))

    async with (
        scripted(script) as (url, received, _, _),
        AdminStatsClient(url, token="t", subscriptions=["stats"], deltas=True) as c,
    ):
        seen = [(await next_stats(c))["data"] for _ in range(2)]
    assert seen == [{"a": 1}, {"a": 3}]
    assert received == []


def test_the_client_applies_the_servers_own_patches() -> None:
    before, after = {"a": {"b": 1, "c": [1, None]}}, {"a": {"b": 2, "c": [1, None]}, "d": "x"}
    patch = protocol.diff(before, after)
    assert patch == {"a": {"b": 2}, "d": "x"}
    assert protocol.merge_patch(before, patch) == after
    assert before == {"a": {"b": 1, "c": [1, None]}}  # not modified
