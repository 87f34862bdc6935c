"""``AdminStatsClient.history()``: the ``history`` reply returned (never yielded), with
``since``; a server without history; a request lost with its connection asked again on
the next; a stopped client."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.server import ServerConnection, serve

from asgi_adminstats.client import AdminStatsClient, ClientError, HistoryUnavailable

from helpers.streams import gather_for, next_of
from support.loopback import token

Message = dict[str, Any]


def snapshot(users: int) -> Message:
    return {"online": {"users": users, "players": 3}, "meta": {"instance": "test-1"}}


async def yielded_for(stream: AdminStatsClient, seconds: float) -> list[str]:
    """The types of what iteration yields for ``seconds``."""
    return [message["type"] for message in await gather_for(stream, seconds)]


async def test_history_is_returned_and_not_yielded(start: Any) -> None:
    stats, addr = await start(stats_interval=60)
    await stats.publish_snapshot(snapshot(1000))
    async with AdminStatsClient(f"ws://{addr}/admin/ws", token=token()) as c:
        first = await asyncio.wait_for(c.history(), 5)  # waits for the connection first
        assert first["type"] == "history" and first["interval"] == 60
        assert len(first["times"]) == len(first["series"]["online.users"]) >= 1
        newest = first["times"][-1]
        # Seen by the client first: on a Redis bus the hub records it when it comes back,
        # and the first dashboard's own snapshot (the producer's wake) may come after it.
        await stats.publish_snapshot(snapshot(1001))
        while (await next_of(c, "stats_update"))["data"]["online"]["users"] != 1001:
            pass
        later = await asyncio.wait_for(c.history(since=newest), 5)
        assert 1001 in later["series"]["online.users"]
        assert later["times"] and all(t > newest for t in later["times"])
        assert "history" not in await yielded_for(c, 0.3)


async def test_a_server_without_history_raises_and_the_client_goes_on(start: Any) -> None:
    stats, addr = await start(stats_interval=60, history_seconds=0)
    async with AdminStatsClient(f"ws://{addr}/admin/ws", token=token()) as c:
        with pytest.raises(HistoryUnavailable) as err:
            await asyncio.wait_for(c.history(), 5)
        assert err.value.code == "history_disabled"
        await stats.publish_snapshot(snapshot(1003))
        while (await next_of(c, "stats_update"))["data"]["online"]["users"] != 1003:
            pass
        assert c.state == "connected"


async def test_a_request_lost_with_its_connection_is_asked_again() -> None:
    attempts: list[str] = []

    async def handler(ws: ServerConnection) -> None:
        attempts.append(f"c{len(attempts) + 1}")
        stamp = "2025-01-04T12:00:00.000Z"
        hello = {"type": "connected", "connectionId": attempts[-1], "timestamp": stamp}
        await ws.send(json.dumps({**hello, "subscriptions": ["stats", "notifications"]}))
        async for raw in ws:
            if json.loads(raw)["type"] != "history":
                continue
            if len(attempts) == 1:
                await ws.close(1012)  # a restart: the request dies with the connection
                return
            series = {"online.users": [3]}
            reply = {"type": "history", "interval": 5, "times": [1], "series": series}
            await ws.send(json.dumps({**reply, "timestamp": stamp}))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        url = f"ws://127.0.0.1:{port}/admin/ws"
        async with AdminStatsClient(url, token="t", reconnect_interval=0.05) as c:
            history = await asyncio.wait_for(c.history(), 5)
            assert c.reconnects == 1
    assert history["series"] == {"online.users": [3]} and attempts == ["c1", "c2"]


async def test_a_stopped_client_raises_at_once(start: Any) -> None:
    _, addr = await start()
    c = AdminStatsClient(f"ws://{addr}/admin/ws", token=token())
    with pytest.raises(RuntimeError):
        await c.history()  # never started: nothing will ever connect
    await c.start()
    await c.close()
    with pytest.raises(ClientError):
        await asyncio.wait_for(c.history(), 1)
