"""One replay bound, ``protocol.REPLAY_LIMIT``, for a ``since`` and after a bus outage."""

from __future__ import annotations

import json
from typing import Any

from websockets.asyncio.client import ClientConnection

from asgi_adminstats.protocol import REPLAY_LIMIT

from support.loopback import client, recv, token

_MISSED = REPLAY_LIMIT + 20


async def _audit_actions_until(
    ws: ClientConnection, *, last_id: str | None = None, pong: bool = False
) -> list[dict[str, Any]]:
    """The ``audit_action`` messages up to a ``pong`` or the action ``last_id`` (excluded)."""
    seen: list[dict[str, Any]] = []
    for _ in range(_MISSED + 20):  # bounded: fails on a missing end, never hangs
        message = await recv(ws, timeout=10)
        if pong and message["type"] == "pong":
            return seen
        if message["type"] == "audit_action":
            if message["data"]["id"] == last_id:
                return seen
            seen.append(message)
    raise AssertionError(f"no end ({last_id=}, {pong=}) after {len(seen)} audit actions")


async def test_a_bus_outage_replays_at_most_replay_limit_actions_oldest_first(
    start: Any,
) -> None:
    # A queue larger than the bound: only the replay limit may cut the replay short.
    # No table watcher: it resumes after the replay and would push the rows beyond the
    # limit as new ones, ahead of the sentinel when the replay is slow (seen on CI).
    stats, addr = await start(notification_queue=_MISSED * 2, audit_watch_interval=0)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await stats.feed.bus_down()
        # Rows written while the bus was down: nobody pushed them (insert only).
        missed = [
            await stats.audit.insert("BAN_PLAYER", "alice", "PLAYER", i) for i in range(_MISSED)
        ]
        await stats.feed.bus_up()
        # A live push after the replay; the notifications lane keeps its order.
        sentinel = await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", 0)
        replayed = await _audit_actions_until(ws, last_id=sentinel["id"])
    assert [m["data"]["id"] for m in replayed] == [a["id"] for a in missed[:REPLAY_LIMIT]]
    assert all(m["data"]["replayed"] is True for m in replayed)


async def test_a_since_replays_at_most_replay_limit_actions_oldest_first(start: Any) -> None:
    stats, addr = await start(notification_queue=_MISSED * 2)
    first = await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 0)
    missed = [await stats.record_action("BAN_PLAYER", "alice", "PLAYER", i) for i in range(_MISSED)]
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(
            json.dumps(
                {"type": "subscribe", "subscriptions": ["notifications"], "since": first["id"]}
            )
        )
        # Messages are handled in order: the pong is queued once the replay is.
        await ws.send(json.dumps({"type": "ping"}))
        replayed = await _audit_actions_until(ws, pong=True)
        # A live push after the replay; the notifications lane keeps its order.
        sentinel = await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", 0)
        replayed += await _audit_actions_until(ws, last_id=sentinel["id"])
    assert [m["data"]["id"] for m in replayed] == [a["id"] for a in missed[:REPLAY_LIMIT]]
