"""The first snapshot a dashboard gets counts the dashboard itself (issue 14, item 4.3).

The snapshot sent on connecting is the latest tick's, counted before the connection
existed: the first dashboard of an idle server saw "0 connections" for up to a whole
``stats_interval``. Now, while the latest snapshot counts nobody, an instance's first
connection makes it tick at once (and, in a cluster, the producer on that instance's
report), and the connection waits for that snapshot, at most a second, instead of getting
the stale one.
"""

from __future__ import annotations

import time
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
