"""Cluster behaviour with real processes: sample-app instances under uvicorn sharing a
real Redis or PostgreSQL bus (see tests/helpers/cluster.py for the harness).

Every wait is bounded; each test prints what it measured (run with ``-s`` to see it).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from websockets.asyncio.client import ClientConnection

from helpers import services
from helpers.cluster import (
    BACKENDS,
    Cluster,
    Instance,
    RedisServer,
    cluster,
    instance_client,
    poll,
    recv_raw,
)
from support.loopback import recv, recv_type

pytestmark = pytest.mark.engines

INTERVAL = 0.5  # ADMINSTATS_STATS_INTERVAL of every cluster here

INSERT_SQL = (
    "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
    " VALUES ($1, $2, 'WORLD', 'world-1', now() at time zone 'utc') RETURNING id"
)


async def drain(ws: ClientConnection, seconds: float) -> list[dict[str, Any]]:
    """Every message that arrives within ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    messages: list[dict[str, Any]] = []
    for _ in range(10_000):
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        try:
            messages.append(await recv(ws, remaining))
        except TimeoutError:
            break
    return messages


async def audit_copies(
    ws: ClientConnection, action_id: str, *, timeout: float, linger: float
) -> list[dict[str, Any]]:
    """Every ``audit_action`` for ``action_id``: waits up to ``timeout`` for the first,
    then ``linger`` seconds more for a duplicate."""
    first = await audit_for(ws, action_id, timeout=timeout)
    later = await drain(ws, linger)
    return [first] + [
        m for m in later if m["type"] == "audit_action" and m["data"]["id"] == action_id
    ]


async def audit_for(ws: ClientConnection, action_id: str, *, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(10_000):
        message = await recv_type(ws, "audit_action", max(0.01, deadline - loop.time()))
        if message["data"]["id"] == action_id:
            return message
    raise AssertionError("unreachable")


async def sql_insert(database_url: str, admin: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return str(await conn.fetchval(INSERT_SQL, "WORLD_CONFIG_CHANGE", admin))
    finally:
        await conn.close()


def by_name(c: Cluster, name: str) -> Instance:
    return next(i for i in c.instances if i.name == name)


# --- a. an action recorded anywhere reaches every instance's clients ---------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_audit_action_reaches_clients_on_every_instance(backend: str, tmp_path: Path) -> None:
    async with cluster(2, backend=backend, tmp_path=tmp_path) as c:
        a, b = c[0], c[1]
        async with instance_client(a) as ws_a, instance_client(b) as ws_b:
            # The first snapshot arrives once the session is in its hub.
            await recv_type(ws_a, "stats_update")
            await recv_type(ws_b, "stats_update")
            loop = asyncio.get_running_loop()

            async def receipt(ws: ClientConnection) -> tuple[dict[str, Any], float]:
                message = await recv_type(ws, "audit_action", timeout=1.0)
                return message, loop.time()

            on_a = asyncio.create_task(receipt(ws_a))
            on_b = asyncio.create_task(receipt(ws_b))
            sent = loop.time()
            action = await b.ban(7, sub="mod-b")
            answered = loop.time()
            try:
                (msg_a, at_a), (msg_b, at_b) = await asyncio.gather(on_a, on_b)
            except TimeoutError:
                pytest.fail(f"an audit_action did not arrive within 1 s\n{c.diagnose()}")
    assert action["action"] == "BAN_PLAYER" and action["admin"] == "mod-b"
    assert msg_a["data"] == action, msg_a
    assert msg_b["data"] == action, msg_b
    print(
        f"\n[{backend}] ban via B: HTTP {1000 * (answered - sent):.1f} ms; "
        f"audit_action on A {1000 * (at_a - sent):.1f} ms, on B {1000 * (at_b - sent):.1f} ms "
        "after the POST was sent"
    )


# --- b. PostgreSQL trigger: any writer's insert is pushed, and only once ----------------


async def test_plain_sql_insert_reaches_dashboards(tmp_path: Path) -> None:
    async with cluster(2, backend="postgres", tmp_path=tmp_path, trigger=True) as c:
        a, b = c[0], c[1]
        for instance in (a, b):
            assert "audit pushes by database trigger" in instance.log(), instance.tail()
        async with instance_client(a) as ws_a, instance_client(b) as ws_b:
            await recv_type(ws_a, "stats_update")
            await recv_type(ws_b, "stats_update")
            loop = asyncio.get_running_loop()
            sent = loop.time()
            row_id = await sql_insert(c.database_url, "sql-script")
            got_a, got_b = await asyncio.gather(
                audit_for(ws_a, row_id, timeout=2.0), audit_for(ws_b, row_id, timeout=2.0)
            )
            latency = loop.time() - sent
            for got in (got_a, got_b):
                assert got["data"]["admin"] == "sql-script"
                assert got["data"]["action"] == "WORLD_CONFIG_CHANGE"
                assert "replayed" not in got["data"]

            # record_action on a trigger-pushing instance must not publish a second copy.
            action = await a.ban(9, sub="mod-a")
            copies_a, copies_b = await asyncio.gather(
                audit_copies(ws_a, action["id"], timeout=1.0, linger=1.5),
                audit_copies(ws_b, action["id"], timeout=1.0, linger=1.5),
            )
    assert [m["data"] for m in copies_a] == [action], copies_a
    assert [m["data"] for m in copies_b] == [action], copies_b
    print(f"\n[postgres] plain INSERT -> audit_action on both instances in {1000 * latency:.1f} ms")


# --- c. one producer: byte-identical snapshots everywhere ----------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_identical_snapshots_on_every_instance(backend: str, tmp_path: Path) -> None:
    async with cluster(3, backend=backend, tmp_path=tmp_path) as c:
        producer = await c.settled()
        async with (
            instance_client(c[0]) as ws1,
            instance_client(c[1]) as ws2,
            instance_client(c[2]) as ws3,
        ):
            clients = (ws1, ws2, ws3)

            async def snapshots(ws: ClientConnection) -> dict[str, str]:
                """collectedAt -> raw frame, for about five ticks."""
                loop = asyncio.get_running_loop()
                deadline = loop.time() + 5.2 * INTERVAL
                frames: dict[str, str] = {}
                for _ in range(1000):
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        _, raw, message = await recv_raw(ws, remaining)
                    except TimeoutError:
                        break
                    if message["type"] == "stats_update":
                        frames[message["data"]["meta"]["collectedAt"]] = raw
                return frames

            seen = await asyncio.gather(*(snapshots(ws) for ws in clients))
    common = sorted(set(seen[0]) & set(seen[1]) & set(seen[2]))
    assert len(common) >= 3, (
        f"fewer than 3 snapshots reached all three clients: {[sorted(s) for s in seen]}"
    )
    counts = []
    for key in common:
        raws = {s[key] for s in seen}
        assert len(raws) == 1, f"snapshot {key} differs between instances: {raws}"
        data = json.loads(raws.pop())["data"]
        assert data["meta"]["instance"] == producer, data["meta"]
        assert data["meta"]["local"] is False, data["meta"]
        counts.append(data["online"]["connections"])
    # Presence reports may lag a tick or two behind the connections.
    assert counts[2:] and all(n == 3 for n in counts[2:]), counts
    print(
        f"\n[{backend}] {len(common)} identical snapshots from {producer}; "
        f"online.connections per tick: {counts}"
    )


# --- d. the database work of a tick does not grow with the instances ---------------------


async def _queries_over(c: Cluster, seconds: float) -> int:
    before = await c.healths()
    await asyncio.sleep(seconds)
    after = await c.healths()
    assert [h["instance"] for h in before] == [h["instance"] for h in after]
    return sum(
        h2["statsQueries"] - h1["statsQueries"] for h1, h2 in zip(before, after, strict=True)
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_queries_per_tick_do_not_grow_with_instances(backend: str, tmp_path: Path) -> None:
    window = 4.0
    async with cluster(1, backend=backend, tmp_path=tmp_path) as c:
        one = await _queries_over(c, window)
        await c.add(2)
        await c.settled()
        three = await _queries_over(c, window)
        per_instance = {h["instance"]: h["statsQueries"] for h in await c.healths()}
    print(
        f"\n[{backend}] stats queries in {window:g} s: 1 instance {one}, "
        f"3 instances {three} (totals per instance: {per_instance})"
    )
    assert one > 0 and three > 0
    assert three <= 1.25 * one + 6, (one, three, per_instance)


# --- e. a crashed producer is replaced within a few ticks --------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_producer_takeover_after_kill(backend: str, tmp_path: Path) -> None:
    async with cluster(3, backend=backend, tmp_path=tmp_path) as c:
        old = await c.settled()
        producer = by_name(c, old)
        watcher = next(i for i in c.instances if i is not producer)
        survivors = [i for i in c.instances if i is not producer]
        async with instance_client(watcher) as ws:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 10
            last_old: float | None = None
            new: dict[str, Any] | None = None
            new_at = 0.0
            killed = False
            for _ in range(1000):
                at, _raw, message = await recv_raw(ws, max(0.01, deadline - loop.time()))
                if message["type"] != "stats_update":
                    continue
                meta = message["data"]["meta"]
                if meta["instance"] == old:
                    last_old = at
                    if not killed:
                        producer.kill()  # right after one of its snapshots
                        killed = True
                elif killed and last_old is not None:
                    new, new_at = message["data"], at
                    break
            assert new is not None and last_old is not None, c.diagnose()
        takeover = new_at - last_old
        assert new["meta"]["local"] is False
        assert new["meta"]["instance"] in {i.name for i in survivors}

        async def one_leader() -> str | None:
            healths = await c.healths(survivors)
            leaders = [h["instance"] for h in healths if h["producer"]["leading"]]
            return leaders[0] if len(leaders) == 1 else None

        leader = await poll(one_leader, timeout=3, what="one leader", context=c.diagnose)
        # And it stays one: no second survivor also claims the lease a tick later.
        await asyncio.sleep(2 * INTERVAL)
        assert await one_leader() == leader == new["meta"]["instance"]
    print(
        f"\n[{backend}] producer {old} killed; {leader} took over {1000 * takeover:.0f} ms "
        "after the last snapshot of the old producer"
    )
    assert takeover < 3 * INTERVAL + 1, takeover


# --- f. Redis goes away and comes back ------------------------------------------------------


async def _stats_where(ws: ClientConnection, ok: Any, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    for _ in range(1000):
        message = await recv_type(ws, "stats_update", max(0.01, deadline - loop.time()))
        if ok(message["data"]):
            return message
    raise AssertionError("unreachable")


async def test_redis_restart_heals(tmp_path: Path) -> None:
    redis = RedisServer(tmp_path)
    await redis.start()
    try:
        async with cluster(
            2, backend="redis", tmp_path=tmp_path, bus_url=redis.url, backoff=(0.2, 1.0)
        ) as c:
            a, b = c[0], c[1]
            async with instance_client(a) as ws_a, instance_client(b) as ws_b:
                await recv_type(ws_a, "stats_update")
                await recv_type(ws_b, "stats_update")
                loop = asyncio.get_running_loop()

                redis.kill()
                killed_at = loop.time()

                async def both_down() -> bool:
                    return all(h["bus"]["status"] == "down" for h in await c.healths())

                await poll(both_down, timeout=5, what="bus down on A and B", context=c.diagnose)
                noticed = loop.time() - killed_at
                # A's clients still get numbers: A's own, marked local.
                local = await _stats_where(
                    ws_a,
                    lambda d: d["meta"]["local"] is True and d["meta"]["bus"]["status"] == "down",
                    timeout=3 * INTERVAL,
                )
                assert local["data"]["meta"]["instance"] == a.name
                # Banned on B during the outage: committed, B's own clients get it at once.
                action = await b.ban(11, sub="mod-b")
                on_b = await audit_for(ws_b, action["id"], timeout=1.0)
                assert "replayed" not in on_b["data"]

                await redis.start()
                restarted_at = loop.time()

                async def healed() -> list[dict[str, Any]] | None:
                    healths = await c.healths()
                    ok = all(
                        h["bus"]["status"] == "up" and h["bus"]["reconnects"] >= 1 for h in healths
                    )
                    return healths if ok else None

                healths = await poll(healed, timeout=10, what="bus up again", context=c.diagnose)
                heal = loop.time() - restarted_at
                copies_a, copies_b = await asyncio.gather(
                    audit_copies(ws_a, action["id"], timeout=3.0, linger=1.5),
                    drain(ws_b, 1.5),
                )
                # A missed the live push: it must arrive exactly once (replayed or live).
                assert len(copies_a) == 1, copies_a
                replayed = copies_a[0]["data"].pop("replayed", False)
                assert copies_a[0]["data"] == action
                # B already had it: no second copy from its replay or its republish.
                assert not [m for m in copies_b if m["type"] == "audit_action"], copies_b

                # Healed both ways: a ban on A reaches B live, one producer again.
                await _healed(c, sender=a, receiver=ws_b, watcher=ws_a, player=12)
            healths = await c.healths()
            for instance, health in zip(c.instances, healths, strict=True):
                lines = instance.log().count("bus (redis) reconnected after")
                assert lines == health["bus"]["reconnects"], (lines, health, instance.tail())
    finally:
        redis.kill()
    print(
        f"\n[redis] outage noticed by both in {1000 * noticed:.0f} ms; healed "
        f"{1000 * heal:.0f} ms after the restart (reconnects "
        f"{[h['bus']['reconnects'] for h in healths]}); the missed action reached A "
        f"{'replayed' if replayed else 'live'}"
    )


# --- g. PostgreSQL: the LISTEN connection is terminated under an instance -----------------


async def test_postgres_listener_termination_heals(tmp_path: Path) -> None:
    async with cluster(
        2, backend="postgres", tmp_path=tmp_path, trigger=True, backoff=(1.0, 2.0)
    ) as c:
        a, b = c[0], c[1]
        async with instance_client(a) as ws_a, instance_client(b) as ws_b:
            await recv_type(ws_a, "stats_update")
            await recv_type(ws_b, "stats_update")
            loop = asyncio.get_running_loop()
            conn = await asyncpg.connect(c.database_url)
            try:
                name = c.bus_application_name(a)
                pid = await conn.fetchval(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE application_name = $1 AND datname = current_database()",
                    name,
                )
                assert pid is not None, f"no connection named {name!r}\n{a.tail()}"
                # Waits (up to 5 s) until the backend is gone.
                assert await conn.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
                terminated_at = loop.time()
                row_id = str(await conn.fetchval(INSERT_SQL, "WORLD_CONFIG_CHANGE", "sql-gap"))
            finally:
                await conn.close()

            saw_down = False

            async def healed() -> dict[str, Any] | None:
                nonlocal saw_down
                health = await a.health()
                saw_down = saw_down or health["bus"]["status"] == "down"
                up = health["bus"]["status"] == "up" and health["bus"]["reconnects"] >= 1
                return health if up else None

            health = await poll(
                healed, timeout=10, interval=0.02, what="A's bus up again", context=c.diagnose
            )
            heal = loop.time() - terminated_at
            copies_a, copies_b = await asyncio.gather(
                audit_copies(ws_a, row_id, timeout=3.0, linger=1.5),
                audit_copies(ws_b, row_id, timeout=1.0, linger=0.5),
            )
            # A listens again: a ban on B reaches A live, and cluster snapshots flow.
            await _healed(c, sender=b, receiver=ws_a, watcher=ws_a, player=13)
    assert "bus (postgresql) lost" in a.log(), a.tail()
    assert a.log().count("bus (postgresql) reconnected after") == health["bus"]["reconnects"] == 1
    assert len(copies_a) == 1, copies_a
    assert copies_a[0]["data"]["admin"] == "sql-gap"
    assert len(copies_b) == 1 and "replayed" not in copies_b[0]["data"], copies_b
    print(
        f"\n[postgres] listener terminated; A healed in {1000 * heal:.0f} ms "
        f"(down seen by the health poll: {saw_down}); the gap's row reached A "
        f"{'replayed' if copies_a[0]['data'].get('replayed') else 'live'}, B live"
    )


# --- h. a producer that lost its bus must not keep the cluster without snapshots --------


async def test_postgres_producer_listener_outage_does_not_starve_the_cluster(
    tmp_path: Path,
) -> None:
    outage = 4.0
    async with cluster(2, backend="postgres", tmp_path=tmp_path, backoff=(0.2, 0.5)) as c:
        producer = by_name(c, await c.settled())
        other = next(i for i in c.instances if i is not producer)
        admin = await asyncpg.connect(services.POSTGRES_URL)  # not the test database
        database = c.database_url.rpartition("/")[2]
        try:
            async with instance_client(other) as ws:
                await recv_type(ws, "stats_update")
                loop = asyncio.get_running_loop()
                # No new connections for a while: the producer's listener cannot come back,
                # while every connection already open (its lease among them) stays.
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
                pid = await admin.fetchval(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = $1",
                    c.bus_application_name(producer),
                )
                assert pid is not None, producer.tail()
                assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
                started = loop.time()
                await poll(
                    lambda: _bus_status(producer, "down"), timeout=3, what="producer bus down"
                )
                receipts = [started]
                for _ in range(1000):
                    remaining = started + outage - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        at, _raw, message = await recv_raw(ws, remaining)
                    except TimeoutError:
                        break
                    if message["type"] == "stats_update":
                        receipts.append(at)
                receipts.append(loop.time())
                healths = await c.healths()  # still during the outage
                await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
        finally:
            await admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')
            await admin.close()
    gap = max(b - a for a, b in itertools.pairwise(receipts))
    print(
        f"\n[postgres] producer {producer.name}'s listener down {outage:g} s: "
        f"{len(receipts) - 2} snapshots reached {other.name}'s client; longest gap "
        f"{1000 * gap:.0f} ms; at the end: "
        + ", ".join(
            f"{h['instance']} bus {h['bus']['status']} leading {h['producer']['leading']}"
            for h in healths
        )
    )
    assert gap < 3 * INTERVAL + 1, (gap, healths)


async def _healed(c: Any, *, sender: Instance, receiver: Any, watcher: Any, player: int) -> None:
    """After an outage: a ban through ``sender`` reaches ``receiver`` live, and one
    producer's cluster snapshots (not local ones) reach ``watcher``."""
    after = await sender.ban(player, sub=f"mod-{sender.name}")
    live = await audit_for(receiver, after["id"], timeout=1.0)
    assert live["data"] == after
    producer = await c.settled()
    await _stats_where(
        watcher,
        lambda d: d["meta"]["instance"] == producer and d["meta"]["local"] is False,
        timeout=3 * INTERVAL,
    )


async def _bus_status(instance: Instance, status: str) -> bool:
    health = await instance.health()
    return bool(health["bus"]["status"] == status)
