"""The first snapshot a dashboard gets counts the dashboard itself (issue 14, item 4.3).

The snapshot sent on connecting is the latest tick's, counted before the connection
existed: the first dashboard of an idle server saw "0 connections" for up to a whole
``stats_interval``. Now, while the latest snapshot counts nobody, an instance's first
connection makes it tick at once (and, in a cluster, the producer on that instance's
report), and the connection waits for that snapshot, at most a second, instead of getting
the stale one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from websockets.typing import Subprotocol

from helpers.cluster import cluster, instance_client, poll
from support.loopback import client, recv, recv_type, token

INTERVAL = 30.0  # no regular tick comes while a test runs: only the one a connection asks
DELTA = [Subprotocol("adminstats.v1"), Subprotocol("adminstats.delta")]


def connections(message: dict[str, Any]) -> int:
    count: int = message["data"]["online"]["connections"]
    return count


@pytest.mark.parametrize("deltas", [False, True], ids=["full", "deltas"])
async def test_the_first_dashboard_counts_itself(start: Any, deltas: bool) -> None:
    stats, addr = await start(stats_interval=INTERVAL)
    assert stats.hub.latest_data()["online"]["connections"] == 0  # the start-up snapshot
    extra: dict[str, Any] = {"subprotocols": DELTA} if deltas else {}
    async with client(f"ws://{addr}/admin/ws", tok=token(), **extra) as ws:
        assert (await recv(ws))["type"] == "connected"
        t0 = time.monotonic()
        # The first snapshot it sees (none counting 0 before it), well before a tick.
        first = await recv_type(ws, "stats_update", timeout=3)
        assert connections(first) == 1, first["data"]["online"]
        assert time.monotonic() - t0 < 1.0
        assert ("seq" in first) is deltas
        # A second dashboard gets the latest at once: it counts the first one.
        async with client(f"ws://{addr}/admin/ws", tok=token("bob")) as other:
            await recv(other)
            assert connections(await recv_type(other, "stats_update", timeout=3)) == 1


async def test_a_snapshot_that_counts_someone_is_sent_as_it_is(start: Any) -> None:
    stats, addr = await start(stats_interval=INTERVAL)
    ours = {"online": {"users": 7, "connections": 3}, "meta": {"instance": "host"}}
    await stats.publish_snapshot(ours)  # e.g. the host's own: not replaced by a tick
    ticks = stats.producer.ticks
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        assert (await recv_type(ws, "stats_update", timeout=3))["data"] == ours
    assert stats.producer.ticks == ticks


class Gate:
    """A collector that holds the tick in progress until ``go`` is set, once ``held``."""

    name = "gate"

    def __init__(self) -> None:
        self.held = False
        self.entered = asyncio.Event()
        self.go = asyncio.Event()

    async def collect(self) -> Mapping[str, Any]:
        if self.held:
            self.entered.set()
            await self.go.wait()
        return {}


async def test_a_snapshot_counting_nobody_does_not_end_the_wait(start: Any) -> None:
    # What React's StrictMode did to a dashboard: a tick counted while its first socket
    # had left and its second not come yet, and the second got "0 connections". Here
    # the host publishes one counting nobody while the first client's tick collects.
    gate = Gate()
    stats, addr = await start(stats_interval=INTERVAL, collectors=(gate,))
    gate.held = True
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        assert (await recv(ws))["type"] == "connected"
        await asyncio.wait_for(gate.entered.wait(), 3)
        await stats.publish_snapshot({"online": {"users": 0, "connections": 0}})
        await asyncio.sleep(0.2)  # the bus has delivered it (memory bus: a few turns)
        async with client(f"ws://{addr}/admin/ws", tok=token("bob")) as other:
            assert (await recv(other))["type"] == "connected"
            await asyncio.sleep(0.2)  # counted by the hub while the tick still collects
            gate.go.set()
            # The tick's (not the host's), counted when its collectors were done.
            for seen in (ws, other):
                first = await recv_type(seen, "stats_update", timeout=3)
                assert connections(first) == 2, first["data"]
                assert "gate" in first["data"]["meta"]["sources"]


async def test_without_a_fresh_snapshot_the_latest_comes_within_a_second(start: Any) -> None:
    stats, addr = await start(stats_interval=INTERVAL)

    async def no_tick() -> None:  # the tick the first connection asks for makes nothing
        return None

    stats.producer.tick = no_tick
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        t0 = time.monotonic()
        first = await recv_type(ws, "stats_update", timeout=3)
        waited = time.monotonic() - t0
    assert connections(first) == 0  # the stale one: nothing better came
    assert 0.5 < waited < 2.0, waited


@pytest.mark.engines
async def test_in_a_cluster_the_producer_counts_another_instances_first_client(
    tmp_path: Path,
) -> None:
    # node1 starts first and produces; node2's own start-up snapshot (local) counted 0.
    async with cluster(2, backend="redis", tmp_path=tmp_path, stats_interval=10, settle=False) as c:
        leader, other = c[0], c[1]

        async def roles() -> bool:
            healths = await c.healths()
            return [h["producer"]["leading"] for h in healths] == [True, False] and all(
                h["bus"]["status"] == "up" for h in healths
            )

        await poll(roles, timeout=10, what="node1 producing", context=c.diagnose)
        async with instance_client(other) as ws2:
            first = await recv_type(ws2, "stats_update", timeout=3)
            assert connections(first) == 1, (first["data"], c.diagnose())
            assert first["data"]["meta"]["instance"] == leader.name
            assert first["data"]["meta"]["local"] is False
            # The producer's first client: the latest counts someone, so no extra tick
            # (it is counted from the next one on), and it gets that snapshot at once.
            async with instance_client(leader) as ws1:
                assert connections(await recv_type(ws1, "stats_update", timeout=3)) == 1
