"""The audit watcher on SQLite: a writer in another process -> a dashboard client.

    python bench/audit_watch.py [--intervals 0.25 0.5 1.0] [--rate 20] [--seconds 20]
    python bench/audit_watch.py --smoke     # a few seconds: behaviour only, no numbers kept

One AdminStats under uvicorn (memory bus, SQLite file, no PostgreSQL trigger) with a
WebSocket client connected. A writer process inserts into ``audit_log`` at a steady mean
rate (Poisson arrivals, one commit per row, as scripts or the sqlite3 shell would) and
prints each id with its commit time on CLOCK_MONOTONIC (``time.monotonic``, system-wide
on Linux, so both processes read the same clock). Per ``audit_watch_interval``:

- insert-to-dashboard latency (commit -> ``audit_action`` received): median, p99, worst;
- the watcher's queries per second (every poll, found rows or not);
- that each row arrived exactly once.

Also the cost of one poll that finds nothing, ``AuditLog.since`` (full rows) against an
id-only query, on the same file. Results: bench/results/audit_watch.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for support/

from asgi_adminstats import AdminStats  # noqa: E402
from asgi_adminstats.db import open_database, statement  # noqa: E402

from support.demo_db import prepare_database  # noqa: E402
from support.loopback import client, make_settings, recv, serve, starlette_host, token  # noqa: E402

RESULTS = ROOT / "bench" / "results"

_WRITER = """
import datetime, random, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10)
rate, seconds = float(sys.argv[2]), float(sys.argv[3])
arrivals = random.Random(1)  # Poisson arrivals: a fixed period would lock to the polls' phase
at = time.monotonic()
for i in range(int(rate * seconds)):
    at += arrivals.expovariate(rate)
    time.sleep(max(0.0, at - time.monotonic()))
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cursor = db.execute(
        "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
        " VALUES ('EXTERNAL_EDIT', 'bench-writer', 'PLAYER', ?, ?)",
        (str(i), now.isoformat(" ")),
    )
    db.commit()
    print(cursor.lastrowid, time.monotonic(), flush=True)
"""


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "n": len(ordered),
        "median_ms": round(statistics.median(ordered), 1),
        "p99_ms": round(ordered[max(0, int(len(ordered) * 0.99) - 1)], 1),
        "worst_ms": round(ordered[-1], 1),
    }


async def measure(interval: float, rate: float, seconds: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    settings = make_settings(tmp, audit_watch_interval=interval, instance_name="bench-watch")
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    path = settings.database_url.removeprefix("sqlite:///")
    async with (
        serve(starlette_host(stats)) as addr,
        client(f"ws://{addr}/admin/ws", tok=token()) as ws,
    ):
        await recv(ws)
        committed: dict[str, float] = {}
        received: collections.defaultdict[str, list[float]] = collections.defaultdict(list)
        queries_before = stats.feed.watcher.queries
        cpu_before, wall_before = time.process_time(), time.monotonic()
        writer = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _WRITER,
            path,
            str(rate),
            str(seconds),
            stdout=asyncio.subprocess.PIPE,
        )
        assert writer.stdout is not None

        async def read_writer() -> None:
            assert writer.stdout is not None
            async for line in writer.stdout:
                action_id, at = line.split()
                committed[action_id.decode()] = float(at)

        reading = asyncio.create_task(read_writer())
        expected = int(rate * seconds)
        deadline = time.monotonic() + seconds * 2 + max(5.0, interval * 5)
        while time.monotonic() < deadline and (len(received) < expected or not reading.done()):
            try:
                message = await recv(ws, max(0.01, deadline - time.monotonic()))
            except TimeoutError:
                break
            if message["type"] == "audit_action":
                received[message["data"]["id"]].append(time.monotonic())
        wall = time.monotonic() - wall_before
        cpu = time.process_time() - cpu_before
        queries = stats.feed.watcher.queries - queries_before
        await asyncio.wait_for(writer.wait(), 10)
        await asyncio.wait_for(reading, 10)
        poll_cost = await query_costs(settings.database_url)
    latencies = [(received[i][0] - t) * 1000 for i, t in committed.items() if i in received]
    return {
        "interval_s": interval,
        "rate_per_s": rate,
        "seconds": seconds,
        "rows": len(committed),
        "received": len(received),
        "duplicates": sum(len(v) - 1 for v in received.values()),
        "missing": len(set(committed) - set(received)),
        "latency": summary(latencies) if latencies else None,
        "queries_per_s": round(queries / wall, 2),
        "server_and_client_cpu_percent": round(100 * cpu / wall, 1),
        "empty_poll_us": poll_cost,
    }


async def query_costs(url: str, n: int = 500) -> dict[str, float]:
    """Microseconds per empty poll: ``actions_since`` (what the watcher runs) vs ids only."""
    db = open_database(url)
    await db.connect()
    try:
        top = int(await db.fetch_val("SELECT MAX(id) FROM audit_log") or 0)
        sqls = {
            "actions_since": "SELECT id, action, admin, target_type, created_at FROM audit_log"
            " WHERE id > :since ORDER BY id LIMIT :limit",
            "ids_only": "SELECT id FROM audit_log WHERE id > :since ORDER BY id LIMIT :limit",
        }
        costs = {}
        for name, sql in sqls.items():
            started = time.perf_counter()
            for _ in range(n):
                await db.fetch_all(statement(sql, since=top, limit=200))
            costs[name] = round((time.perf_counter() - started) / n * 1e6, 1)
        return costs
    finally:
        await db.disconnect()


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| interval s | rows | once each | median ms | p99 ms | worst ms | queries/s "
        "| CPU % (server+client) | empty poll µs: since / ids only |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lat, cost = r["latency"] or {}, r["empty_poll_us"]
        once = "yes" if not r["duplicates"] and not r["missing"] else "NO"
        lines.append(
            f"| {r['interval_s']:g} | {r['rows']} | {once} | {lat.get('median_ms')} | "
            f"{lat.get('p99_ms')} | {lat.get('worst_ms')} | {r['queries_per_s']} | "
            f"{r['server_and_client_cpu_percent']} | "
            f"{cost['actions_since']} / {cost['ids_only']} |"
        )
    return "\n".join(lines) + "\n"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--intervals", type=float, nargs="+", default=[0.25, 0.5, 1.0])
    parser.add_argument("--rate", type=float, default=20.0, help="rows per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--smoke", action="store_true", help="3 s at 0.1 s, behaviour only")
    args = parser.parse_args()
    if args.smoke:
        args.intervals, args.rate, args.seconds = [0.1], 10.0, 3.0
    rows = []
    for interval in args.intervals:
        row = await measure(interval, args.rate, args.seconds)
        print(json.dumps(row), flush=True)
        rows.append(row)
    text = markdown(rows)
    print(text)
    failed = [r for r in rows if r["duplicates"] or r["missing"]]
    if failed:
        raise SystemExit(f"rows lost or pushed twice: {failed}")
    if not args.smoke:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "audit_watch.json").write_text(json.dumps(rows, indent=2) + "\n")
        (RESULTS / "audit_watch.md").write_text(text)


if __name__ == "__main__":
    asyncio.run(main())
