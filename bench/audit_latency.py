"""Audit push latency across two instances, against the engine's own round trip.

    python bench/audit_latency.py [--n 200]

Two AdminStats instances (each under its own uvicorn server, one process) share a real
bus; a WebSocket client is connected to instance B. Measured, N times each:

- redis:    ``record_action`` on instance A -> ``audit_action`` received by B's client
            (stats database: PostgreSQL); baseline: a bare redis-py PUBLISH -> SUBSCRIBE
            round trip.
- postgres: a plain SQL ``INSERT`` (another connection, trigger installed) -> B's client;
            baseline: a bare asyncpg NOTIFY -> LISTEN round trip.

Results: bench/results/audit_latency.json and .md (median, p99, worst; ratio to the
baseline measured in the same run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
from redis.asyncio import Redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for support/

from asgi_adminstats import AdminStats  # noqa: E402

from support import services  # noqa: E402
from support.demo_db import prepare_database  # noqa: E402
from support.loopback import (  # noqa: E402
    client,
    make_settings,
    recv,
    recv_type,
    serve,
    starlette_host,
    token,
)

RESULTS = ROOT / "bench" / "results"


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 3),
        "worst_ms": round(ordered[-1], 3),
    }


async def redis_baseline(n: int) -> list[float]:
    channel = f"bench_{uuid.uuid4().hex[:8]}"
    pub, sub = Redis.from_url(services.REDIS_URL), Redis.from_url(services.REDIS_URL)
    pubsub = sub.pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(channel)
    samples = []
    try:
        for i in range(n):
            started = time.perf_counter()
            await pub.publish(channel, str(i))
            while (m := await pubsub.get_message(timeout=2)) is None or m["type"] != "message":
                pass
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        # Untyped before redis-py 8.2: the ignore may be unused.
        await pubsub.aclose()  # type: ignore[no-untyped-call,unused-ignore]
        await pub.aclose()
        await sub.aclose()
    return samples


async def postgres_baseline(url: str, n: int) -> list[float]:
    listener, sender = await asyncpg.connect(url), await asyncpg.connect(url)
    got: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("bench", lambda *a: got.put_nowait(a[3]))
    samples = []
    try:
        for i in range(n):
            started = time.perf_counter()
            await sender.execute("SELECT pg_notify('bench', $1)", str(i))
            await asyncio.wait_for(got.get(), 2)
            samples.append((time.perf_counter() - started) * 1000)
    finally:
        await listener.close()
        await sender.close()
    return samples


async def two_instances(tmp: Path, **urls: str) -> Any:
    prefix = f"b{uuid.uuid4().hex[:8]}"
    stats = [
        AdminStats(make_settings(tmp, instance_name=f"bench-{name}", channel_prefix=prefix, **urls))
        for name in ("a", "b")
    ]
    return stats


async def measure(engine: str, n: int) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    async with services_for(engine) as urls:
        await prepare_database(urls["database_url"])
        a, b = await two_instances(tmp, **urls)
        if engine == "postgres":
            await a.install_audit_trigger()  # its engine connects on first use
        async with (
            serve(starlette_host(a)),
            serve(starlette_host(b)) as addr_b,
            client(f"ws://{addr_b}/admin/ws", tok=token()) as ws,
        ):
            await recv(ws)
            writer = await asyncpg.connect(urls["database_url"]) if engine == "postgres" else None
            samples, after_commit = [], []
            try:
                for i in range(n):
                    started = time.perf_counter()
                    if writer is not None:
                        await writer.execute(
                            "INSERT INTO audit_log (action, admin, target_type, target_id,"
                            " created_at) VALUES ('BAN_PLAYER', 'bench', 'PLAYER', $1,"
                            " now() at time zone 'utc')",
                            str(i),
                        )
                    else:
                        await a.record_action("BAN_PLAYER", "bench", "PLAYER", i)
                    committed = time.perf_counter()
                    await recv_type(ws, "audit_action", timeout=3)
                    samples.append((committed_to := time.perf_counter()) - started)
                    after_commit.append(committed_to - committed)
            finally:
                if writer is not None:
                    await writer.close()
        baseline = (
            await redis_baseline(n)
            if engine == "redis"
            else await postgres_baseline(urls["database_url"], n)
        )
    measured, base = summary([x * 1000 for x in samples]), summary(baseline)
    what = (
        "record_action on A -> client on B"
        if engine == "redis"
        else "SQL INSERT (any writer) -> client on B"
    )
    return {
        "engine": engine,
        "what": what,
        "measured": measured,
        "baseline": base,
        # For record_action: from its return (insert committed) to receipt on B.
        "after_commit": summary([x * 1000 for x in after_commit]) if writer is None else None,
        "median_ratio": round(measured["median_ms"] / base["median_ms"], 2),
    }


def services_for(engine: str) -> Any:
    import contextlib

    @contextlib.asynccontextmanager
    async def redis() -> Any:
        # A cluster shares a server database; SQLite's file locks would be measured instead.
        async with services.fresh_postgres_database() as url:
            yield {"broadcast_url": services.REDIS_URL, "database_url": url}

    @contextlib.asynccontextmanager
    async def postgres() -> Any:
        async with services.fresh_postgres_database() as url:
            yield {"broadcast_url": url, "database_url": url}

    return redis() if engine == "redis" else postgres()


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| engine | path | n | median ms | p99 ms | worst ms | baseline median ms "
        "| ratio | after commit: median / worst ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        m, b, c = r["measured"], r["baseline"], r["after_commit"]
        tail = f"{c['median_ms']} / {c['worst_ms']}" if c else "-"
        lines.append(
            f"| {r['engine']} | {r['what']} | {m['n']} | {m['median_ms']} | "
            f"{m['p99_ms']} | {m['worst_ms']} | {b['median_ms']} | "
            f"{r['median_ratio']} | {tail} |"
        )
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    rows = [await measure(engine, args.n) for engine in ("redis", "postgres")]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "audit_latency.json").write_text(json.dumps(rows, indent=2) + "\n")
    (RESULTS / "audit_latency.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    asyncio.run(main())
