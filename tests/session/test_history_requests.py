"""The ``history`` request over a real server and client (PROTOCOL.md sections 2 and 3):
asked for, never sent unasked, ``since``, history off, bad requests, the rate limit."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from asgi_adminstats import CloseCode

from support.loopback import client, closed, recv, recv_type, token

Message = dict[str, Any]


def snapshot(users: int, latency: float | None) -> Message:
    """Ours, told apart from the collectors' by ``users`` (1000 and up)."""
    return {
        "online": {"users": users, "players": 3, "connections": 1},
        "system": {"database": {"status": "healthy", "latency": latency}},
        "meta": {"instance": "test-1", "stale": False},
    }


async def snapshot_with(ws: ClientConnection, users: int) -> None:
    """Read up to the snapshot with ``online.users == users`` (bounded)."""
    async with asyncio.timeout(5):
        while (await recv_type(ws, "stats_update"))["data"]["online"]["users"] != users:
            pass


async def test_history_on_request_only_with_every_snapshot_seen(start: Any) -> None:
    stats, addr = await start(stats_interval=60)  # the start-up tick, ours, little more
    for users in range(1001, 1006):
        await stats.publish_snapshot(snapshot(users, None if users == 1003 else users - 1000.5))
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await recv_type(ws, "stats_update")
        # Not on connect: only snapshots come unasked.
        with pytest.raises(TimeoutError):
            await recv_type(ws, "history", timeout=0.5)
        await ws.send(json.dumps({"type": "history"}))
        history = await recv_type(ws, "history")
    assert list(history) == ["type", "interval", "times", "series", "timestamp"]
    assert history["interval"] == 60
    times = history["times"]
    assert len(times) >= 6 and times == sorted(times)  # the start-up snapshot, then ours
    series = history["series"]
    assert all(len(values) == len(times) for values in series.values())
    ours = series["online.users"].index(1001)
    assert ours >= 1  # the start-up snapshot came first
    assert series["online.users"][ours : ours + 5] == [1001, 1002, 1003, 1004, 1005]
    latency = series["system.database.latency"][ours : ours + 5]
    assert latency == [0.5, 1.5, None, 3.5, 4.5]
    assert not any(path.startswith("meta.") for path in series)


async def test_since_and_one_text_for_everyone_in_a_tick(start: Any) -> None:
    stats, addr = await start(stats_interval=60)
    url = f"ws://{addr}/admin/ws"
    async with client(url, tok=token("alice")) as a, client(url, tok=token("bob")) as b:
        await recv_type(a, "stats_update")
        await recv_type(b, "stats_update")
        await asyncio.sleep(0.5)  # a tick for a first client, if any, is over: none till 60 s
        await stats.publish_snapshot(snapshot(1001, 2.0))
        await snapshot_with(a, 1001)
        await snapshot_with(b, 1001)
        await a.send('{"type": "history"}')
        await b.send('{"type": "history"}')
        first, second = await recv_type(a, "history"), await recv_type(b, "history")
        assert first == second  # the same encoded text, timestamp included
        assert first["series"]["online.users"][-1] == 1001
        newest = first["times"][-1]
        await stats.publish_snapshot(snapshot(1002, 2.5))
        await snapshot_with(a, 1002)
        await a.send(json.dumps({"type": "history", "since": newest}))
        gap = await recv_type(a, "history")
    assert len(gap["times"]) == 1 and gap["times"][0] > newest
    assert gap["series"]["online.users"] == [1002]


async def test_history_off_is_an_error_and_the_connection_stays(start: Any) -> None:
    _, addr = await start(history_seconds=0)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send('{"type": "history"}')
        error = await recv_type(ws, "error")
        assert error["code"] == "history_disabled"
        await ws.send('{"type": "ping"}')
        assert (await recv_type(ws, "pong"))["type"] == "pong"


async def test_a_bad_since_is_a_bad_message(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send('{"type": "history", "since": "yesterday"}')
        error = await recv_type(ws, "error")
        assert error["code"] == "bad_message" and "since" in error["message"]
        assert "yesterday" not in error["message"]  # never echoed


async def test_history_requests_count_against_the_message_rate(start: Any) -> None:
    _, addr = await start(message_rate=1, message_burst=3)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        for _ in range(6):
            await ws.send('{"type": "history"}')
        code, reason = await closed(ws)
    assert (code, reason) == (CloseCode.RATE_LIMITED, "rate limited")
