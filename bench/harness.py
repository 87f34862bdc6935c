"""What every scenario of bench/fanout.py shares: the case, the registry, a started server
with N connected clients, one measured publish round, percentiles.

A scenario is ``async def name(case: Case) -> dict`` (one result row) registered with
``@scenario("name", plan=..., report=...)``: ``plan(args, snapshot)`` lists the cases it
runs (default: the fan-out grid, kinds x N x deflate x repetitions, from the command
line) and ``report(rows)`` makes its section of the results (default: the fan-out table).
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from loadgen import Clients
from server_process import ServerProcess
from servers import PATH, SECRET

WELCOME = {"adminstats": 2, "seed": 1, "welcome": 2}  # messages a client receives on connecting
SETTLE = 0.5  # seconds of quiet before reading RSS (--smoke: 0.1)
GAP = 0.05  # seconds between publishes, after the previous one completed and was acked
AUDIT_MARK = b'"audit_action"'  # an audit push, found in a frame's first bytes


@dataclass(frozen=True)
class Case:
    kind: str
    n: int
    deflate: bool  # the clients offer permessage-deflate (browsers do)
    publishes: int
    rep: int
    snapshot: Path
    server_args: tuple[str, ...] = ()
    settle: float = SETTLE
    options: dict[str, Any] = field(default_factory=dict)  # the scenario's own parameters


@dataclass
class Section:
    """A scenario's part of the results: JSON (summary, targets) and Markdown lines."""

    summary: list[dict[str, Any]]
    targets: list[dict[str, Any]]
    markdown: list[str]


Scenario = Callable[[Case], Awaitable[dict[str, Any]]]
Plan = Callable[[argparse.Namespace, Path], list[Case]]
Report = Callable[[list[dict[str, Any]]], Section]


@dataclass(frozen=True)
class Spec:
    run: Scenario
    plan: Plan | None = None  # None: the fan-out grid from the command line
    report: Report | None = None  # None: the fan-out table


SCENARIOS: dict[str, Spec] = {}


def scenario(
    name: str, *, plan: Plan | None = None, report: Report | None = None
) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = Spec(function, plan, report)
        return function

    return register


def client_headers() -> list[tuple[str, str]]:
    # The same handshake for every kind (only adminstats reads it): equal per-socket bytes.
    from asgi_adminstats import PROTOCOL, mint_token

    token = mint_token(SECRET, sub="bench-admin", roles=("admin",), ttl=86400)
    return [("Authorization", f"Bearer {token}"), ("Sec-WebSocket-Protocol", PROTOCOL)]


@contextlib.asynccontextmanager
async def connected(
    case: Case, *, mark: bytes | None = None, app_pong: bool = False
) -> AsyncIterator[tuple[ServerProcess, Clients, dict[str, Any]]]:
    """A fresh server with ``case.n`` clients connected, registered and welcomed; yields
    the row so far (setup time, idle RSS, negotiated deflate). ``mark`` and ``app_pong``
    go to :class:`Clients`."""
    async with ServerProcess(case.kind, snapshot=case.snapshot, extra=case.server_args) as server:
        # One client first and gone again: lazy imports and first-use caches (JWT, zlib)
        # are not charged to the N connections.
        warm = Clients("127.0.0.1", server.port, path=PATH, headers=client_headers())
        try:
            await warm.connect(1, deflate=case.deflate)
            await warm.wait_frames(WELCOME.get(case.kind, 0), timeout=5)
        finally:
            warm.close()
        await count_until(server, lambda count: count == 0, timeout=5)
        await asyncio.sleep(case.settle)
        rss_before = server.rss()
        objects_before = json.loads(await server.command("gc"))["tracked_objects"]
        clients = Clients(
            "127.0.0.1",
            server.port,
            path=PATH,
            headers=client_headers(),
            mark=mark,
            app_pong=app_pong,
        )
        try:
            started = time.perf_counter()
            await clients.connect(case.n, deflate=case.deflate)
            timeout = 10 + case.n / 200
            await count_until(server, lambda count: count >= case.n, timeout)
            if not await clients.wait_frames(WELCOME.get(case.kind, 0), timeout):
                raise RuntimeError(f"{case.kind}: welcome messages missing after {timeout} s")
            setup_s = time.perf_counter() - started
            await asyncio.sleep(case.settle)
            row = {
                "scenario": "",
                **{k: v for k, v in asdict(case).items() if k not in ("snapshot", "server_args")},
                "server": server.info,
                "setup_s": round(setup_s, 2),
                "deflate_negotiated": sum(c.deflate for c in clients.conns),
                "rss_before_kib": round(rss_before / 1024),
                "rss_per_conn_kib": round((server.rss() - rss_before) / case.n / 1024, 2),
                # Objects the collector tracks (and a full collection walks), per client.
                "gc_objects_per_conn": round(
                    (json.loads(await server.command("gc"))["tracked_objects"] - objects_before)
                    / case.n,
                    1,
                ),
            }
            yield server, clients, row
        finally:
            clients.close()


async def count_until(server: ServerProcess, ok: Callable[[int], bool], timeout: float) -> None:
    # The server's own count: a chat client is only there once its subscription exists.
    deadline = time.monotonic() + timeout
    while not ok(count := await server.count()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{server.kind}: still {count} clients registered")
        await asyncio.sleep(0.05)


@dataclass
class Round:
    first_ms: float
    completion_ms: float
    received: int
    complete: bool  # every active client received it within the timeout
    loadgen_cpu_s: float
    wall_s: float


async def publish_round(server: ServerProcess, clients: Clients, n: int) -> Round:
    clients.begin_round()
    cpu = time.process_time()
    t0 = time.perf_counter()
    server.send("publish")
    # Generous (the ceiling needs ~0.3 s for 5000) but bounded: a stuck server costs
    # one timeout, then the series stops.
    complete = await clients.wait_round(timeout=5 + n / 250)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu
    if (ack := await server.reply()) != "ok":
        raise RuntimeError(f"{server.kind}: publish answered {ack!r}")
    times = clients.round_times()
    await asyncio.sleep(GAP)
    if not times:
        return Round(math.inf, math.inf, 0, False, cpu, wall)
    first, last = (min(times) - t0) * 1e3, (max(times) - t0) * 1e3
    return Round(first, last if complete else math.inf, len(times), complete, cpu, wall)


def pct(values: Sequence[float], q: float) -> float | None:
    """Nearest rank (with 20 values p99 is the worst one); None if there are none or it
    is infinite (an incomplete round)."""
    if not values:
        return None
    value = sorted(values)[max(0, math.ceil(q * len(values)) - 1)]
    return None if math.isinf(value) else round(value, 3)


def verdict(value: float | None, limit: float) -> str:
    return "n/a" if value is None else ("pass" if value <= limit else "miss")


def cell(value: Any, suffix: str = "") -> str:
    return "-" if value is None else f"{value}{suffix}"
