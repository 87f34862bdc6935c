"""``workers``: deliveries per second with one server process and with ``uvicorn --workers 2``.

    ulimit -n "$(ulimit -Hn)"
    python bench/fanout.py --scenario workers             # N=5000, 3 repetitions
    python bench/fanout.py --scenario workers --smoke     # N=50, 1 repetition, 1 s series

Not in the default order (about 5 minutes at N=5000). The bus is Redis at
``ADMINSTATS_BENCH_REDIS_URL`` (default ``redis://127.0.0.1:6379/13``, a database no
test uses; FLUSHDB at the start of every case, a channel prefix of its own per case).
Per case a fresh server: 1 process (bench/servers.py as the other scenarios run it) or
``--workers 2`` (bench/workers.py, bench/server_workers.py: every worker a full
AdminStats on the bus, one of them the producer). N clients (5000; ``--n``),
permessage-deflate neither offered nor accepted; one unmeasured publish, then publishes
one at a time for ``--window`` seconds of timed publishing (5; smoke 1), at most 2000.
``publish`` goes to one worker; the bus takes it to every worker.

Pacing, what the next publish waits for (both run; ``ADMINSTATS_BENCH_PACING`` picks one):

- ``server`` (the target's measure): every worker's fan-out of this publish completed
  (``fanned K`` on each control channel: the hub handed the frame to every client's
  socket). The load generator does not read meanwhile: after every 10 publishes it reads
  what the kernel buffered, several frames per ``recv``, and every client must have
  every frame (any coalescing shows as a loss). Deliveries/s = N x publishes / the timed
  publishing (the bulk reads are not timed: real clients read on other machines).
- ``clients`` (contrast): every client received this publish, the load generator
  reading as frames come (one ``recv`` per frame, ~10 µs each: on two cores it takes
  CPU the second worker would need, so this pacing cannot show the servers' scaling).

Never pipelined: a session keeps only the newest unsent snapshot, so overlapping
publishes would be coalesced and skip work; one at a time is also what the producer does.

Pinning (not symmetric, on purpose): 1 worker is pinned to CPU 0 and the load generator
to CPU 1, the baseline's best case; 2 workers and the load generator are not pinned
(three processes on two cores, as a host would run them). The load generator counts
frames by their headers only (bench/loadgen_counting.py: no clock read per frame).

Reported per pacing and worker count (medians of the repetitions): deliveries/s, the
received rate with everything included, ms per publish, server CPU (utime+stime summed
over the workers) per 1000 deliveries and in cores, the load generator's CPU share over
the timed part and its µs per frame, the CPU of everything else on the machine (other
work here skews a run: look at it), and the kernel's spread of the N connections over
the two workers. Target (issue 13, goal 4): 2 workers / 1 worker >= 1.7 (server pacing).
Redis unreachable: skipped, unless ``ADMINSTATS_REQUIRE_SERVICES=1``.
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import collections
import contextlib
import dataclasses
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil
from harness import WELCOME, Case, client_headers, count_until, scenario
from loadgen_counting import CountingClients
from server_process import Control, ServerProcess
from server_workers import WorkerServers
from servers import PATH
from workers_report import PACINGS, WORKERS, config_of, report

REDIS_URL = os.environ.get("ADMINSTATS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
MAX_ROUNDS = 2000
BATCH = 10  # "server" pacing: publishes between two bulk reads
WELCOME_QUIET = 1.5  # s without a message: past the component's first-client wait (1 s)


def plan(args: argparse.Namespace, snapshot: Path) -> list[Case]:
    ns = args.n or ([50] if args.smoke else [5000])
    reps = args.reps or (1 if args.smoke else 3)
    window = args.window or (1.0 if args.smoke else 5.0)
    settle = 0.1 if args.smoke else 0.5
    pacings = (
        [os.environ["ADMINSTATS_BENCH_PACING"]]
        if "ADMINSTATS_BENCH_PACING" in os.environ
        else PACINGS
    )

    def options(pacing: str, k: int, mode: str) -> dict[str, Any]:
        return {"pacing": pacing, "workers": k, "mode": mode, "window_s": window}

    return [
        Case(
            "adminstats",
            n,
            False,
            0,
            rep,
            snapshot,
            args.server_args,
            settle,
            options(pacing, k, mode),
        )
        for rep in range(reps)
        for n in ns
        for pacing in pacings
        for k, mode in (WORKERS if rep % 2 == 0 else WORKERS[::-1])  # alternate the order
    ]


def _unreachable() -> str | None:
    parts = urlsplit(REDIS_URL)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 1).close()
    except OSError:
        reason = f"Redis is not reachable at {REDIS_URL}"
        if os.environ.get("ADMINSTATS_REQUIRE_SERVICES") == "1":
            raise RuntimeError(f"{reason} (ADMINSTATS_REQUIRE_SERVICES=1)") from None
        return reason
    return None


async def _flush() -> None:
    from redis.asyncio import Redis

    client = Redis.from_url(REDIS_URL, socket_timeout=5)
    try:
        await client.flushdb()  # a lease left by a killed server must not linger
    finally:
        await client.aclose()


@contextlib.asynccontextmanager
async def _server(case: Case, workers: int, mode: str) -> AsyncIterator[ServerProcess]:
    """The server(s) with this case's pinning (see the docstring)."""
    prefix = f"w{uuid.uuid4().hex[:10]}"
    extra = (*case.server_args, "--no-deflate", "--setting", f"broadcast_url={REDIS_URL}",
             "--setting", f"channel_prefix={prefix}")  # fmt: skip
    mine = os.sched_getaffinity(0)
    everything = set(range(os.cpu_count() or 1))
    os.sched_setaffinity(0, everything)  # the server inherits it: --cpu 0 must be allowed
    try:
        if workers == 1:
            async with ServerProcess("adminstats", snapshot=case.snapshot, extra=extra) as server:
                if len(everything) > 1:
                    os.sched_setaffinity(0, everything - {0})
                yield server
        else:
            extra = (*extra, "--cpu", "-1", *(("--reuse-port",) if mode == "reuse-port" else ()))
            async with WorkerServers(workers, snapshot=case.snapshot, extra=extra) as server:
                yield server
    finally:
        os.sched_setaffinity(0, mine)


def _affinity(server: ServerProcess) -> list[list[int]]:
    processes = getattr(server, "worker_processes", None) or [server.process]
    return [list(p.cpu_affinity()) for p in processes if p is not None]


@scenario("workers", plan=plan, report=report)
async def workers(case: Case) -> dict[str, Any]:
    """Deliveries per second on a Redis bus: 1 process, uvicorn --workers 2, run(workers=2)."""
    row = {k: v for k, v in asdict(case).items() if k not in ("snapshot", "server_args")}
    if reason := _unreachable():
        return {**row, "skipped": reason, "headline": f"skipped: {reason}"}
    await _flush()
    k, mode = config_of(asdict(case))
    timeout = 10 + case.n / 200
    async with _server(case, k, mode) as server:
        row["server"] = server.info
        clients = CountingClients("127.0.0.1", server.port, path=PATH, headers=client_headers())
        try:
            started = time.perf_counter()
            await clients.connect(case.n, deflate=False)
            await count_until(server, lambda count: count >= case.n, timeout)
            if not await clients.wait_frames(WELCOME["adminstats"], timeout):
                raise RuntimeError(f"welcome messages missing after {timeout} s")
            # A client that came while the first one waited for a snapshot counting it
            # may get the latest and then that one (the wait is 1 s, and 5000 handshakes
            # on one core can hold the bus's round trip longer): count from a quiet moment.
            if not await clients.settle(WELCOME_QUIET, timeout):
                raise RuntimeError(f"the welcome messages did not settle in {timeout} s")
            row["welcome_extra"] = sum(c.frames > WELCOME["adminstats"] for c in clients.conns)
            clients.zero()
            row["setup_s"] = round(time.perf_counter() - started, 2)
            if isinstance(server, WorkerServers):
                row["per_worker"] = await server.counts()
            loadgen = sorted(os.sched_getaffinity(0))
            row["affinity"] = {"server": _affinity(server), "loadgen": loadgen}
            warm = dataclasses.replace(case, options={**case.options, "window_s": 0})
            await _series(server, clients, warm, timeout)  # one publish: first-use costs out
            row.update(await _series(server, clients, case, timeout))
        finally:
            clients.close()
    row["headline"] = (
        f"{row['deliveries_per_s']:.0f} deliveries/s, {row['round_ms']} ms/publish, "
        f"cpu {row['server_cpu_ms_per_1000']} ms/1000, loadgen {row['loadgen_cpu_share']}"
        + (f", split {row['per_worker']}" if "per_worker" in row else "")
    )
    return row


def _controls(server: ServerProcess) -> list[Control]:
    return server.channels_of_workers if isinstance(server, WorkerServers) else [server.control]


def _machine() -> dict[str, float]:
    """CPU seconds the whole machine spent busy, and of it in softirq, and stolen by the
    hypervisor (every process, the kernel)."""
    times = psutil.cpu_times()
    busy = sum(times) - times.idle - getattr(times, "iowait", 0.0)
    return {
        "busy": busy,
        "softirq": getattr(times, "softirq", 0.0),
        "steal": getattr(times, "steal", 0.0),
    }


async def _publish(server: ServerProcess, controls: list[Control], targets: list[int]) -> None:
    """One publish, until every worker's fan-out of it completed."""
    server.send("publish")
    for control, target in zip(controls, targets, strict=True):
        control.send(f"fanned {target}")
    await server.control.ok()
    for control in controls:
        if not (answer := await control.reply()).isdigit():
            raise RuntimeError(f"fanned: {answer!r}")


async def _series(
    server: ServerProcess, clients: CountingClients, case: Case, timeout: float
) -> dict[str, Any]:
    """Publishes for the window, one at a time (see the docstring's pacing)."""
    by_clients, window = case.options["pacing"] == "clients", case.options["window_s"]
    controls = _controls(server)
    base = clients.frames() // max(len(clients.conns), 1)
    if any(c.frames != base for c in clients.conns):
        held = collections.Counter(c.frames for c in clients.conns)
        raise RuntimeError(f"the clients do not all hold the same number of messages: {held}")
    fanned = [int(await control.command("fanned 0")) for control in controls]
    cpu, loadgen, machine = server.cpu_seconds(), time.process_time(), _machine()
    started = time.perf_counter()
    rounds, served, loadgen_served = 0, 0.0, 0.0
    while rounds < MAX_ROUNDS and (rounds == 0 or served < window):
        batch = 1 if by_clients else BATCH
        if not by_clients:
            clients.pause()
        timed, timed_cpu = time.perf_counter(), time.process_time()
        for _ in range(batch):
            rounds += 1
            if by_clients:
                clients.expect(base + rounds)  # before the trigger: no message can be missed
            await _publish(server, controls, [before + rounds for before in fanned])
            if by_clients and not await clients.wait_count(base + rounds, timeout):
                raise RuntimeError(f"publish {rounds} did not reach every client in {timeout} s")
        served += time.perf_counter() - timed
        loadgen_served += time.process_time() - timed_cpu
        if not by_clients:  # the batch, read in bulk (not timed as the server's)
            clients.expect(base + rounds)
            clients.resume()
            if not await clients.wait_count(base + rounds, timeout):
                raise RuntimeError(f"publishes up to {rounds} did not all arrive in {timeout} s")
    wall = time.perf_counter() - started
    cpu, loadgen = server.cpu_seconds() - cpu, time.process_time() - loadgen
    machine = {k: v - machine[k] for k, v in _machine().items()}
    delivered = clients.frames() - base * len(clients.conns)
    expected = base + rounds
    return {
        "rounds": rounds,
        "deliveries": delivered,
        # Timed: from each publish to every worker's fan-out of it (the loadgen idle
        # under "server" pacing); the bulk reads between batches are not.
        "deliveries_per_s": round(case.n * rounds / served, 1),
        "received_per_s": round(delivered / wall, 1),  # everything included
        "round_ms": round(served / rounds * 1e3, 2),
        "server_cpu_ms_per_1000": round(cpu * 1e3 / max(delivered, 1) * 1000, 2),
        "server_cpu_share": round(cpu / served, 3),  # in cores, over the timed part
        "loadgen_cpu_share": round(loadgen_served / served, 3),  # over the timed part
        "loadgen_cpu_us_per_frame": round(loadgen * 1e6 / max(delivered, 1), 2),
        # Neither server nor load generator: Redis, the supervisor, other work (whole run).
        "other_cpu_share": round((machine["busy"] - cpu - loadgen) / wall, 3),
        "softirq_share": round(machine["softirq"] / wall, 3),
        "steal_share": round(machine["steal"] / wall, 3),
        "losses": sum(max(0, expected - c.frames) for c in clients.conns),
        "extra_frames": sum(max(0, c.frames - expected) for c in clients.conns),
        "lost_connections": clients.lost,
    }
