"""Delta updates: off unless the client offers ``adminstats.delta``; then a full snapshot
first and ``stats_delta`` patches that rebuild exactly what a client without deltas gets
at the same time; a full snapshot whenever the client may not hold the base."""

from __future__ import annotations

import asyncio
import copy
import json
import random
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.typing import Subprotocol

from asgi_adminstats import protocol
from asgi_adminstats.delivery import Hub, Outbox

from helpers.cluster import cluster
from helpers.cluster import token as cluster_token
from support.loopback import client, recv, recv_type, token

DELTA = [Subprotocol("adminstats.v1"), Subprotocol("adminstats.delta")]


def snapshot(users: int, **extra: Any) -> dict[str, Any]:
    return {
        "online": {"users": users, "players": 3, "connections": 2},
        "totals": {"players": 1250, "villages": 2156},
        "activity": {"recentActions": [{"id": "7", "action": "BAN_PLAYER"}]},
        "meta": {"instance": "test-1", "stale": False, "bus": {"error": None}},
        **extra,
    }


async def next_stats(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = await recv(ws)
        if message["type"] in ("stats_update", "stats_delta"):
            return message


class Holder:
    """What a delta client holds: the snapshot and its seq."""

    def __init__(self) -> None:
        self.seq: int | None = None
        self.data: Any = None

    def take(self, message: dict[str, Any]) -> None:
        if message["type"] == "stats_update":
            self.seq, self.data = message["seq"], message["data"]
            return
        assert message["base"] == self.seq, (message["base"], self.seq)
        self.seq, self.data = message["seq"], protocol.merge_patch(self.data, message["data"])


# --- over a real server -----------------------------------------------------------------


async def test_off_by_default_the_frames_are_todays(start: Any) -> None:
    stats, addr = await start(stats_interval=60)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        hello = await recv(ws)
        assert "deltas" not in hello
        await recv_type(ws, "stats_update")
        for users in (1, 2, 3):
            await stats.publish_snapshot(snapshot(users))
            raw = await ws.recv()
            # Byte for byte the text the producer encoded: no seq, no other field.
            assert raw == stats.hub.latest_stats
            assert list(json.loads(raw)) == ["type", "data", "timestamp"]


async def test_deltas_rebuild_what_a_full_client_sees(start: Any) -> None:
    stats, addr = await start(stats_interval=60)
    url = f"ws://{addr}/admin/ws"
    async with (
        client(url, tok=token()) as plain,
        client(url, tok=token(), subprotocols=DELTA) as ws,
    ):
        assert ws.subprotocol == "adminstats.v1"
        hello = await recv(ws)
        assert hello["deltas"] is True
        first = await next_stats(ws)
        assert first["type"] == "stats_update" and isinstance(first["seq"], int)
        assert list(first) == ["type", "seq", "data", "timestamp"]
        held = Holder()
        held.take(first)
        await recv(plain)
        await recv_type(plain, "stats_update")
        rng = random.Random(7)
        data = snapshot(10)
        await stats.publish_snapshot(data)  # from the collectors' snapshot to ours
        await recv_type(plain, "stats_update")
        held.take(await next_stats(ws))
        kinds = []
        for step in range(12):
            data = copy.deepcopy(data)
            data["online"]["users"] = rng.randrange(100)
            if step % 3 == 0:
                data["activity"]["recentActions"].insert(0, {"id": str(8 + step), "action": "X"})
            if step == 5:
                del data["totals"]["villages"]  # a removed key: the one null a patch has
            await stats.publish_snapshot(data)
            full, message = await recv_type(plain, "stats_update"), await next_stats(ws)
            kinds.append(message["type"])
            if message["type"] == "stats_delta":
                assert len(json.dumps(message)) < len(json.dumps(full))
                assert "totals" not in message["data"] or step == 5
            held.take(message)
            assert protocol.same(held.data, full["data"]), step
            assert held.data == data
        assert kinds == ["stats_delta"] * 12


async def test_a_value_becoming_null_goes_out_in_full(start: Any) -> None:
    stats, addr = await start(stats_interval=60)
    async with client(f"ws://{addr}/admin/ws", tok=token(), subprotocols=DELTA) as ws:
        await recv(ws)
        held = Holder()
        held.take(await next_stats(ws))
        await stats.publish_snapshot(snapshot(1, system={"database": {"latency": 4}}))
        held.take(await next_stats(ws))  # a delta or the full: either is fine here
        await stats.publish_snapshot(snapshot(1, system={"database": {"latency": None}}))
        message = await next_stats(ws)
        assert message["type"] == "stats_update", message
        held.take(message)
        assert held.data["system"] == {"database": {"latency": None}}
        await stats.publish_snapshot(snapshot(2, system={"database": {"latency": None}}))
        message = await next_stats(ws)
        assert message["type"] == "stats_delta"
        assert message["data"] == {"online": {"users": 2}}


async def test_subscribing_to_stats_again_resyncs_in_full(start: Any) -> None:
    stats, addr = await start(stats_interval=60)
    async with client(f"ws://{addr}/admin/ws", tok=token(), subprotocols=DELTA) as ws:
        await recv(ws)
        await next_stats(ws)
        await stats.publish_snapshot(snapshot(1))
        await stats.publish_snapshot(snapshot(2))
        assert (await next_stats(ws))["type"] == "stats_delta"
        delta = await next_stats(ws)
        assert delta["type"] == "stats_delta"
        # A client whose base is wrong asks again: the latest, in full, with its seq.
        await ws.send(json.dumps({"type": "subscribe", "subscriptions": ["stats"]}))
        resync = await recv_type(ws, "stats_update")
        assert resync["seq"] == delta["seq"] and resync["data"] == snapshot(2)
        await stats.publish_snapshot(snapshot(3))
        assert (await next_stats(ws))["base"] == delta["seq"]


# --- the hub and the outbox: frames coalesced, subscriptions ---------------------------


class Member:
    def __init__(self, deltas: bool) -> None:
        self.subscriptions = {"stats"}
        self.outbox = Outbox(notification_limit=10)  # no express: frames wait in the lanes
        self.outbox.deltas = deltas
        self.sub = "alice"


def frame(users: int) -> str:
    return protocol.stats_update(data=snapshot(users))


def take(member: Member) -> list[dict[str, Any]]:
    frames = []
    while (item := member.outbox.pop()) is not None:
        frames.append(json.loads(item[1]))
    return frames


async def test_a_coalesced_frame_means_a_full_snapshot_next() -> None:
    hub = Hub()
    member, plain = Member(deltas=True), Member(deltas=False)
    hub.add(member)
    hub.add(plain)
    hub.publish_stats(frame(1))
    assert [m["type"] for m in take(member)] == ["stats_update"]
    hub.publish_stats(frame(2))  # a delta waits in the slot, never written...
    hub.publish_stats(frame(3))  # ...and is replaced: the client never holds seq 2
    (message,) = take(member)
    assert message["type"] == "stats_update" and message["seq"] == 3
    hub.publish_stats(frame(4))
    (message,) = take(member)
    assert message["type"] == "stats_delta" and message["base"] == 3
    assert message["data"] == {"online": {"users": 4}}
    assert [list(m) for m in take(plain)] == [["type", "data", "timestamp"]]


async def test_one_frame_per_kind_per_tick() -> None:
    hub = Hub()
    group = [Member(deltas=True) for _ in range(3)] + [Member(deltas=False) for _ in range(2)]
    for member in group:
        hub.add(member)
    hub.publish_stats(frame(1))
    for member in group:
        take(member)
    hub.publish_stats(frame(2))
    texts = [member.outbox._stats for member in group]
    assert texts[0] is texts[1] is texts[2]  # the same str object: encoded once
    assert texts[3] is texts[4] is hub.latest_stats


async def test_unsubscribed_then_subscribed_starts_over_in_full() -> None:
    hub = Hub()
    member = Member(deltas=True)
    hub.add(member)
    hub.publish_stats(frame(1))
    take(member)
    member.subscriptions.discard("stats")
    member.outbox.drop_stats()
    hub.publish_stats(frame(2))
    hub.publish_stats(frame(3))
    assert take(member) == []
    member.subscriptions.add("stats")
    hub.send_latest(member)
    assert [(m["type"], m["seq"]) for m in take(member)] == [("stats_update", 3)]
    hub.publish_stats(frame(4))
    (message,) = take(member)
    assert (message["type"], message["base"]) == ("stats_delta", 3)


# --- the patch itself -------------------------------------------------------------------


def test_diff_round_trips_and_refuses_what_rfc7386_cannot_say() -> None:
    rng = random.Random(3)
    values: list[Any] = [0, 1, 1.0, True, False, "x", [], [None, 1], {"a": 1}, {}]
    for _ in range(2000):
        base = {k: rng.choice(values) for k in "abcd" if rng.random() < 0.8}
        new = {k: rng.choice(values) for k in "abcd" if rng.random() < 0.8}
        patch = protocol.diff(base, new)
        assert patch is not None
        assert protocol.same(protocol.merge_patch(base, patch), new), (base, new, patch)
    assert protocol.diff({"a": 1}, {"a": None}) is None
    assert protocol.diff({}, {"a": {"b": None}}) is None
    assert protocol.diff({"a": 1}, {"a": {"b": [None]}}) == {"a": {"b": [None]}}
    assert protocol.diff({"a": 1}, {"a": True}) == {"a": True}
    assert protocol.diff({"a": {"b": 1, "c": 2}}, {"a": {"b": 1}}) == {"a": {"c": None}}


# --- a cluster: each instance patches what arrives on the bus --------------------------


async def test_deltas_on_an_instance_that_only_relays(tmp_path: Path) -> None:
    """Two sample-app processes on Redis: a delta client on the instance that does not
    produce rebuilds every snapshot a full client there gets."""
    async with cluster(2, backend="redis", tmp_path=tmp_path) as c:
        producer = await c.settled()
        relay = next(i for i in (c[0], c[1]) if i.name != producer)
        async with (
            client(relay.ws_url, tok=cluster_token("viewer"), origin=None) as plain,
            client(
                relay.ws_url, tok=cluster_token("viewer"), origin=None, subprotocols=DELTA
            ) as ws,
        ):
            assert (await recv(ws))["deltas"] is True
            await recv(plain)
            held = Holder()
            held.take(await next_stats(ws))
            full: dict[str, Any] = {}
            rebuilt: dict[str, Any] = {}
            kinds = []
            while len(rebuilt) < 6:
                message = await next_stats(ws)
                kinds.append(message["type"])
                held.take(message)
                rebuilt[held.data["meta"]["collectedAt"]] = held.data
            async with asyncio.timeout(5):
                while not set(rebuilt) <= set(full):
                    data = (await recv_type(plain, "stats_update"))["data"]
                    full[data["meta"]["collectedAt"]] = data
    assert "stats_delta" in kinds, kinds
    for key, data in rebuilt.items():
        assert protocol.same(data, full[key]), key
