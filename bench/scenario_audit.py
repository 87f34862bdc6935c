"""``audit``: audit action -> client receipt at N=1000 on the memory, Redis and PostgreSQL
buses.

One adminstats server with N (1000) idle clients (no permessage-deflate offered), a
fresh server per bus:

- ``memory`` and ``redis``: t0 just before the ``record`` control command, which runs
  ``record_action`` (INSERT into the SQLite audit table, committed; then the push to
  this instance's clients and the publish of the id on the bus). Redis gets its own
  channel prefix per run.
- ``postgres``: database and bus on a fresh PostgreSQL database (created per run,
  dropped at the end), the audit trigger installed at start-up; t0 just before a plain
  SQL ``INSERT`` into ``audit_log`` from the loadgen's own asyncpg connection: the
  trigger's NOTIFY -> the bus -> the server reads the row -> the push.

Per action: the first and the last of the N clients receiving the ``audit_action``
frame; A actions (50; ``--smoke`` 10), each after the previous one reached every client
plus 50 ms. Target (the issue): p99 under 25 ms; every client is a dashboard, so it is
judged on the last client's receipt (the first is reported too). Redis and PostgreSQL
are skipped when unreachable, unless ``ADMINSTATS_REQUIRE_SERVICES=1`` (then an error).
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import math
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg
from harness import AUDIT_MARK, Case, Section, cell, connected, pct, scenario, verdict
from loadgen import Clients
from server_process import ServerProcess
from servers import KINDS

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for support/

from support import services

BACKENDS = ("memory", "redis", "postgres")
TARGET_MS = 25.0
SPACING = 0.05  # seconds after an action reached every client
INSERT = (
    "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
    " VALUES ('ban', 'bench', 'player', $1, now() at time zone 'utc')"
)


def plan(args: argparse.Namespace, snapshot: Path) -> list[Case]:
    ns = args.n or ([20] if args.smoke else [1000])
    actions = args.rounds or (10 if args.smoke else 50)
    settle = 0.1 if args.smoke else 0.5
    return [
        Case(
            KINDS[0],
            n,
            False,
            0,
            0,
            snapshot,
            args.server_args,
            settle,
            {"backend": backend, "actions": actions},
        )
        for n in ns
        for backend in BACKENDS
    ]


def _unreachable(backend: str) -> str | None:
    host, port = services.address("redis" if backend == "redis" else "postgresql")
    if services.reachable(host, port):
        return None
    reason = f"{backend} is not reachable at {host}:{port}"
    if os.environ.get("ADMINSTATS_REQUIRE_SERVICES") == "1":
        raise RuntimeError(f"{reason} (ADMINSTATS_REQUIRE_SERVICES=1)")
    return reason


@contextlib.asynccontextmanager
async def _bus(backend: str) -> AsyncIterator[tuple[tuple[str, ...], str | None]]:
    """The server's extra arguments for ``backend``, and the database URL to INSERT into."""
    prefix = f"b{uuid.uuid4().hex[:10]}"
    if backend == "memory":
        yield (), None
    elif backend == "redis":
        yield ("--setting", f"broadcast_url={services.REDIS_URL}", "--setting",
               f"channel_prefix={prefix}"), None  # fmt: skip
    else:
        async with services.fresh_postgres_database() as url:
            settings = (f"database_url={url}", f"broadcast_url={url}", f"channel_prefix={prefix}")
            yield (*(x for s in settings for x in ("--setting", s)), "--audit-trigger"), url


async def _action(
    server: ServerProcess, clients: Clients, writer: Any, seq: int, timeout: float
) -> dict[str, float]:
    clients.begin_marks()
    t0 = time.perf_counter()
    if writer is not None:
        await writer.execute(INSERT, str(seq))
    else:
        server.send("record")
    committed = time.perf_counter()
    complete = await clients.wait_marks(timeout)
    if writer is None:
        await server.control.ok()
    times = clients.mark_times()
    await asyncio.sleep(SPACING)
    return {
        "first": (min(times) - t0) * 1e3 if times else math.inf,
        "last": (max(times) - t0) * 1e3 if complete and times else math.inf,
        "insert": (committed - t0) * 1e3 if writer is not None else math.nan,
    }


@scenario("audit", plan=plan, report=lambda rows: report(rows))
async def audit(case: Case) -> dict[str, Any]:
    """Audit action -> client receipt on the memory, Redis and PostgreSQL buses."""
    backend = case.options["backend"]
    if backend != "memory" and (reason := _unreachable(backend)):
        row = {k: v for k, v in asdict(case).items() if k not in ("snapshot", "server_args")}
        return {**row, "skipped": reason, "headline": f"skipped: {reason}"}
    timeout = 5 + case.n / 250
    async with _bus(backend) as (extra, url):
        case = dataclasses.replace(case, server_args=(*case.server_args, *extra))
        async with connected(case, mark=AUDIT_MARK) as (server, clients, row):
            writer = await asyncpg.connect(url) if url is not None else None
            try:
                await _action(server, clients, writer, 0, timeout)  # first-use costs stay out
                samples = [
                    await _action(server, clients, writer, seq, timeout)
                    for seq in range(1, case.options["actions"] + 1)
                ]
            finally:
                if writer is not None:
                    await writer.close()
            first = [s["first"] for s in samples]
            last = [s["last"] for s in samples]
            inserts = [s["insert"] for s in samples if not math.isnan(s["insert"])]
            row.update(
                {
                    "path": "SQL INSERT (trigger)" if url else "record_action",
                    "first_p50_ms": pct(first, 0.5),
                    "first_p99_ms": pct(first, 0.99),
                    "last_p50_ms": pct(last, 0.5),
                    "last_p99_ms": pct(last, 0.99),
                    "insert_p50_ms": pct(inserts, 0.5),
                    "incomplete_actions": sum(math.isinf(v) for v in last),
                    "lost_connections": clients.lost,
                    "samples": samples,
                }
            )
            row["headline"] = (
                f"first p50/p99 {row['first_p50_ms']}/{row['first_p99_ms']} ms, last "
                f"p50/p99 {row['last_p50_ms']}/{row['last_p99_ms']} ms"
            )
            return row


def report(rows: list[dict[str, Any]]) -> Section:
    summary, targets = [], []
    lines = [
        "| bus | N | trigger | first client p50 / p99 ms | last client p50 / p99 ms "
        "| INSERT (commit) p50 ms | incomplete | target: last-client p99 < 25 ms |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        backend = r["options"]["backend"]
        if "error" in r or "skipped" in r:
            what = f"error: {r['error']}" if "error" in r else f"skipped: {r['skipped']}"
            lines.append(f"| {backend} | {r['n']} | {what} | | | | | n/a |")
            targets.append({"target": f"{backend}: last-client p99 < 25 ms", "value": None})
            targets[-1]["result"] = "n/a"
            continue
        value = r["last_p99_ms"]
        result = "n/a" if value is None else ("pass" if value < TARGET_MS else "miss")
        summary.append(
            {"backend": backend, "n": r["n"], **{k: r[k] for k in r if k.endswith("_ms")}}
        )
        targets.append(
            {
                "target": f"{backend}: audit -> last of {r['n']} clients, p99 < 25 ms",
                "value": value,
                "result": result,
                "first_client": verdict(r["first_p99_ms"], TARGET_MS),
            }
        )
        lines.append(
            f"| {backend} | {r['n']} | {r['path']} "
            f"| {cell(r['first_p50_ms'])} / {cell(r['first_p99_ms'])} "
            f"| {cell(r['last_p50_ms'])} / {cell(r['last_p99_ms'])} "
            f"| {cell(r['insert_p50_ms'])} | {r['incomplete_actions']} | {result} "
            f"(first client: {verdict(r['first_p99_ms'], TARGET_MS)}) |"
        )
    lines += ["", *NOTES]
    return Section(summary, targets, lines)


NOTES = (
    "t0: just before `record` is sent (memory, redis) or the INSERT is issued (postgres);"
    " receipt: a client's `audit_action` frame. p99 is nearest rank over the actions."
    " On one instance `record_action` pushes to its own clients before it publishes the id"
    " (the bus carries it to *other* instances: bench/results/audit_latency.md), so memory"
    " and redis differ only by that publish; postgres goes through the trigger's NOTIFY,"
    " the bus listener and a SELECT of the row. memory and redis store the audit table in"
    " SQLite (commit included in the latency), postgres in PostgreSQL.",
)
