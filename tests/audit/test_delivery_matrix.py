"""Nothing lost, nothing twice: each audit row reaches each client exactly once.

Issue 12, item 3. For every bus and database pair a writer in another process inserts a
burst of audit rows (one commit each) while ``record_action`` runs on the instances (a
ban over HTTP); every client counts the ``audit_action`` ids it receives and must get
each id of the table exactly once (a replayed copy counts as the delivery), each
writer's ids in id order. Real ``python -m sample_app`` processes (tests/helpers/cluster.py),
real Redis and PostgreSQL; the chaos cases restart a test-owned redis-server or SIGKILL
the producer in the middle of the burst. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from helpers import services
from helpers.audit_burst import (
    Collector,
    Writer,
    has_trigger,
    problems,
    running_cluster,
    table_ids,
)
from helpers.cluster import Cluster, Instance, RedisServer, instance_client, poll
from support.loopback import recv_type

# Minutes of real clusters: the README's command runs it; the tox envs leave it out.
pytestmark = [pytest.mark.engines, pytest.mark.once]

ROWS, PACE = 100, 0.015  # the burst: about 2 s of inserts
BANS = 8  # record_action calls spread over the burst
ENV = {
    "ADMINSTATS_AUDIT_WATCH_INTERVAL": "0.2",
    "ADMINSTATS_BUS_BACKOFF_INITIAL": "0.2",
    "ADMINSTATS_BUS_BACKOFF_MAX": "1.0",
    # The sample app installs the trigger on PostgreSQL by default: only init_db does here.
    "ADMINSTATS_INSTALL_AUDIT_TRIGGER": "false",
}
TRIGGER = pytest.mark.parametrize("trigger", [False, True], ids=["watcher", "with-trigger"])

Chaos = Callable[[Cluster, Writer], Awaitable[None]]


async def leaders(c: Cluster) -> list[str]:
    return [h["instance"] for h in await c.healths() if h["producer"]["leading"]]


@contextlib.asynccontextmanager
async def on_postgres(tmp_path: Path, bus_url: str | None, trigger: bool) -> AsyncIterator[Cluster]:
    """Two instances on a fresh PostgreSQL database (and bus, when ``bus_url`` is None)."""
    async with services.fresh_postgres_database() as url:
        bus = bus_url or url
        async with running_cluster(
            2, tmp_path, bus_url=bus, database_url=url, trigger=trigger, env=ENV
        ) as c:
            assert await has_trigger(url) == trigger  # the case is the one it says
            yield c


async def deliver(
    c: Cluster,
    *,
    watch: list[Instance],
    ban: list[Instance],
    rows: int = ROWS,
    pace: float = PACE,
    chaos: Chaos | None = None,
    notes: dict[str, object] | None = None,
) -> str:
    """Run the burst with a client on each of ``watch``; assert each row once per client."""
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(instance_client(i)) for i in watch]
        for ws in sockets:  # the first snapshot: the session is in its hub
            await recv_type(ws, "stats_update", 10)
        baseline = max(await table_ids(c.database_url), default=0)
        collectors = [Collector(i.name, ws) for i, ws in zip(watch, sockets, strict=True)]
        writer = Writer(c.database_url, rows, pace)
        loop = asyncio.get_running_loop()
        began = loop.time()
        timeline: list[str] = []

        def since() -> float:
            return loop.time() - began

        await writer.start()
        bans: dict[str, list[int]] = {f"ban via {i.name}": [] for i in ban}

        async def banning() -> None:
            for k in range(BANS):
                await writer.reached(k * rows // BANS)
                instance = ban[k % len(ban)]
                action = await instance.ban(k % 5 + 1, sub=f"mod-{instance.name}")
                bans[f"ban via {instance.name}"].append(int(action["id"]))
                timeline.append(f"ban {action['id']} via {instance.name} at +{since():.2f} s")

        await asyncio.gather(banning(), *([chaos(c, writer)] if chaos else []))
        writers = {"writer": await writer.finish(), **bans}
        ids = await table_ids(c.database_url, baseline)
        assert ids == sorted(i for w in writers.values() for i in w), (ids, writers)
        await asyncio.gather(*(k.complete(set(ids), timeout=10, linger=1.0) for k in collectors))
        took = loop.time() - began
    found = [p for k in collectors for p in problems(k, writers, ordered=chaos is None)]
    events = f"rows {writers['writer'][0]}..{writers['writer'][-1]}; {timeline}; {notes}"
    assert not found, "\n".join([*found, events, c.diagnose()])
    replayed = {k.name: len(k.replayed) for k in collectors}
    summary = f"{len(ids)} rows x {len(collectors)} clients once each in {took:.1f} s"
    print(f"\n{summary}; replayed: {replayed}")
    return summary


# --- the pairs, no chaos -------------------------------------------------------------------


async def test_memory_bus_sqlite_watcher_and_record_action(tmp_path: Path) -> None:
    # The memory bus is per process: one instance, its watcher publishes the writer's rows.
    db = f"sqlite:///{tmp_path / 'matrix.db'}"
    async with running_cluster(1, tmp_path, bus_url="memory://", database_url=db, env=ENV) as c:
        await deliver(c, watch=[c[0]], ban=[c[0]])


async def test_postgres_bus_postgres_db_trigger(tmp_path: Path) -> None:
    async with on_postgres(tmp_path, None, trigger=True) as c:
        for instance in c.instances:  # the case under test: the trigger pushes
            assert "audit pushes by database trigger" in instance.log(), instance.tail()
        await deliver(c, watch=[c[0], c[1]], ban=[c[0], c[1]])


@TRIGGER
async def test_redis_bus_postgres_db(tmp_path: Path, trigger: bool) -> None:
    # with-trigger: the trigger's NOTIFY must reach a Redis bus too (the producer
    # forwards it); the contract is the same either way.
    services.require("redis")
    async with on_postgres(tmp_path, services.REDIS_URL, trigger) as c:
        await deliver(c, watch=[c[0], c[1]], ban=[c[0], c[1]])


# --- chaos in the middle of the burst ----------------------------------------------------
# The bans spread over the burst land around the outage or the kill too: an id pushed
# by record_action must not hide the other writer's rows still unpublished below it.


@TRIGGER
async def test_redis_restart_during_the_burst(tmp_path: Path, trigger: bool) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    outage: dict[str, object] = {}
    healed_at: list[int] = []  # rows committed when the bus was up everywhere again

    async def restart(c: Cluster, writer: Writer) -> None:
        await writer.reached(writer.rows // 4)
        loop = asyncio.get_running_loop()
        killed = loop.time()
        last_at_kill = writer.ids[-1]
        outage["producer before"] = await leaders(c)
        redis.kill()

        async def all_down() -> bool:
            return all(h["bus"]["status"] == "down" for h in await c.healths())

        await poll(all_down, timeout=10, what="bus down everywhere", context=c.diagnose)
        outage["noticed"] = loop.time() - killed
        outage["last row at kill"] = last_at_kill
        outage["last row when all down"] = writer.ids[-1]
        await redis.start()

        async def all_up() -> bool:
            return all(h["bus"]["status"] == "up" for h in await c.healths())

        await poll(all_up, timeout=15, what="bus up everywhere", context=c.diagnose)
        healed_at.append(len(writer.ids))
        outage["last row when all up"] = writer.ids[-1]
        outage["healed"] = loop.time() - killed
        await asyncio.sleep(1.0)  # a lease lost with Redis's memory is claimed again
        outage["producer after"] = await leaders(c)

    try:
        async with on_postgres(tmp_path, redis.url, trigger) as c:
            await deliver(
                c, watch=[c[0], c[1]], ban=[c[0], c[1]], rows=200, chaos=restart, notes=outage
            )
    finally:
        redis.kill()
    print(f"outage: {outage}")
    # The restart happened while the writer was still inserting.
    assert healed_at[0] < 200, outage


@TRIGGER
async def test_producer_kill_during_the_burst(tmp_path: Path, trigger: bool) -> None:
    services.require("redis")
    killed: dict[str, object] = {}
    took: list[int] = []  # rows committed when the survivor led

    async def kill_producer(c: Cluster, writer: Writer) -> None:
        await writer.reached(writer.rows // 3)
        producer = next(i for i in c.instances if i.name == killed["name"])
        producer.kill()
        killed["last row at kill"] = writer.ids[-1]
        survivor = next(i for i in c.instances if i is not producer)

        async def took_over() -> bool:
            return bool((await survivor.health())["producer"]["leading"])

        await poll(took_over, timeout=10, what="the survivor leads", context=c.diagnose)
        took.append(len(writer.ids))
        killed["last row at takeover"] = writer.ids[-1]

    async with on_postgres(tmp_path, services.REDIS_URL, trigger) as c:
        killed["name"] = name = await c.settled()
        survivor = next(i for i in c.instances if i.name != name)
        # The survivor's client and its bans (some land between the kill and the takeover).
        await deliver(
            c, watch=[survivor], ban=[survivor], rows=200, chaos=kill_producer, notes=killed
        )
    print(f"producer kill: {killed}")
    assert took[0] < 200, killed  # the takeover came mid-burst
