"""The audit watcher on SQLite or MySQL: a writer in another process -> a dashboard client.

    python bench/audit_watch.py [--intervals 0.25 0.5 1.0] [--rate 20] [--seconds 20]
        [--databases sqlite mysql]
    python bench/audit_watch.py --smoke     # a few seconds: behaviour only, no numbers kept

One AdminStats under uvicorn (memory bus, no PostgreSQL trigger; a SQLite file, or a new
database on the MariaDB/MySQL server at ADMINSTATS_TEST_MYSQL_URL, default
mysql://root@127.0.0.1:3306/test, reached through a SQLAlchemy engine on aiomysql) with
a WebSocket client connected. A writer process inserts into ``audit_log`` at a steady
mean rate (Poisson arrivals, one commit per row, as scripts, the sqlite3 shell or the
mysql client would) and prints each id with its commit time on CLOCK_MONOTONIC
(``time.monotonic``, system-wide on Linux, so both processes read the same clock). Per
database and ``audit_watch_interval``:

- insert-to-dashboard latency (commit -> ``audit_action`` received): median, p99, worst;
- the watcher's queries per second (every poll, found rows or not);
- that each row arrived exactly once.

Also the cost of one poll that finds nothing, ``AuditLog.since`` (full rows) against an
id-only query, on the same database. Results: bench/results/audit_watch.json and .md.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for support/

from asgi_adminstats import AdminStats  # noqa: E402
from asgi_adminstats.db import open_database, statement  # noqa: E402

from support.demo_db import prepare_database  # noqa: E402
from support.loopback import client, make_settings, recv, serve, starlette_host, token  # noqa: E402
from support.services import fresh_mysql_database  # noqa: E402

RESULTS = ROOT / "bench" / "results"

_WRITER = """
import datetime, random, sys, time
if sys.argv[1].startswith("mysql"):
    from urllib.parse import urlsplit
    import pymysql
    url = urlsplit(sys.argv[1])
    db = pymysql.connect(host=url.hostname, port=url.port or 3306, user=url.username,
                         password=url.password or "", database=url.path.lstrip("/"))
    sql = "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
    sql += " VALUES ('EXTERNAL_EDIT', 'bench-writer', 'PLAYER', %s, %s)"
else:
    import sqlite3
    db = sqlite3.connect(sys.argv[1].removeprefix("sqlite:///"), timeout=10)
    sql = "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
    sql += " VALUES ('EXTERNAL_EDIT', 'bench-writer', 'PLAYER', ?, ?)"
rate, seconds = float(sys.argv[2]), float(sys.argv[3])
arrivals = random.Random(1)  # Poisson arrivals: a fixed period would lock to the polls' phase
at = time.monotonic()
cursor = db.cursor()
for i in range(int(rate * seconds)):
    at += arrivals.expovariate(rate)
    time.sleep(max(0.0, at - time.monotonic()))
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cursor.execute(sql, (str(i), now.isoformat(" ")))
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


@contextlib.asynccontextmanager
async def database_url(database: str, tmp: Path) -> AsyncIterator[str]:
    """A new, empty ``sqlite`` file or ``mysql`` database; the latter dropped afterwards."""
    if database == "mysql":
        async with fresh_mysql_database() as url:
            yield url
    else:
        yield f"sqlite:///{tmp / 'stats.db'}"


async def measure(database: str, interval: float, rate: float, seconds: float) -> dict[str, Any]:
    async with database_url(database, Path(tempfile.mkdtemp())) as url:
        row = await _measure(url, interval, rate, seconds)
    return {"database": database, **row}


async def _measure(url: str, interval: float, rate: float, seconds: float) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp())
    settings = make_settings(
        tmp, database_url=url, audit_watch_interval=interval, instance_name="bench-watch"
    )
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
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
            url,
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
        "| database | interval s | rows | once each | median ms | p99 ms | worst ms | queries/s "
        "| CPU % (server+client) | empty poll µs: since / ids only |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lat, cost = r["latency"] or {}, r["empty_poll_us"]
        once = "yes" if not r["duplicates"] and not r["missing"] else "NO"
        lines.append(
            f"| {r['database']} | {r['interval_s']:g} | {r['rows']} | {once} | "
            f"{lat.get('median_ms')} | "
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
    parser.add_argument(
        "--databases", nargs="+", choices=["sqlite", "mysql"], default=["sqlite", "mysql"]
    )
    parser.add_argument("--smoke", action="store_true", help="3 s at 0.1 s, behaviour only")
    args = parser.parse_args()
    if args.smoke:
        args.intervals, args.rate, args.seconds = [0.1], 10.0, 3.0
    rows = []
    for database in args.databases:
        for interval in args.intervals:
            row = await measure(database, interval, args.rate, args.seconds)
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
