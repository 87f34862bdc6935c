"""``during``: what a new handshake and an audit push see while a fan-out is under way.

With N (5000) idle clients connected (no permessage-deflate offered), R times (10):

1. baseline, nothing else going on: one new connection from the probe process (TCP
   connect, upgrade with the token, until the ``connected`` message); then, apart, one
   ``record_action`` (the ``record`` control command) -> the first and the last of the N
   clients receiving the ``audit_action`` push;
2. during: t0, ``publish`` (a snapshot to all N), at once the probe opens a connection
   and ``record`` follows on the same control connection: the same two timings, and the
   publish's own completion.

Delay = during - the median of the baselines of the same run; p50 and p99 over R
(nearest rank: with 10, p99 is the worst). Target (the issue): a handshake or an audit
push during a 5000-client fan-out is delayed by at most 50 ms; the audit push is judged
on its first receipt, the last is reported. ``seed`` (one awaited send after another, no
audit push) runs the handshake part for contrast.
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import time
from pathlib import Path
from typing import Any

from harness import (
    AUDIT_MARK,
    GAP,
    Case,
    Section,
    cell,
    client_headers,
    connected,
    pct,
    publish_round,
    scenario,
    verdict,
)
from loadgen import Clients
from probe import Probe
from server_process import ServerProcess

TARGET_MS = 50.0
KINDS = ("adminstats", "seed")
QUIET = 0.1  # seconds after a sample, for the clients' buffers to drain
METRICS = ("handshake", "audit_first", "audit_last")


def plan(args: argparse.Namespace, snapshot: Path) -> list[Case]:
    kinds = [kind for kind in (args.only or KINDS) if kind in KINDS]
    ns = args.n or ([50] if args.smoke else [5000])
    rounds = args.rounds or (3 if args.smoke else 10)
    settle = 0.1 if args.smoke else 0.5
    options = {"rounds": rounds}
    return [
        Case(kind, n, False, 0, 0, snapshot, args.server_args, settle, options)
        for n in ns
        for kind in kinds
    ]


def _handshake_ms(answer: dict[str, Any]) -> float:
    if "error" in answer:
        raise RuntimeError(f"probe: {answer['error']}")
    return (float(answer["first"]) - float(answer["start"])) * 1e3


def _spread(times: list[float], t0: float, complete: bool) -> tuple[float, float]:
    if not times:
        return math.inf, math.inf
    return (min(times) - t0) * 1e3, ((max(times) - t0) * 1e3 if complete else math.inf)


async def _audit_alone(
    server: ServerProcess, clients: Clients, timeout: float
) -> tuple[float, float]:
    clients.begin_marks()
    t0 = time.perf_counter()
    server.send("record")
    complete = await clients.wait_marks(timeout)
    await server.control.ok()
    return _spread(clients.mark_times(), t0, complete)


async def _together(
    server: ServerProcess, clients: Clients, probe: Probe, audit: bool, timeout: float
) -> dict[str, float]:
    clients.begin_round()
    if audit:
        clients.begin_marks()
    t0 = time.perf_counter()
    server.send("publish")
    probe.send_open()
    t_record = time.perf_counter()
    if audit:
        server.send("record")
    handshake = _handshake_ms(await probe.result())
    complete = await clients.wait_round(timeout)
    sample = {"handshake": handshake, "fanout": _spread(clients.round_times(), t0, complete)[1]}
    if audit:
        complete = await clients.wait_marks(timeout)
        sample["audit_first"], sample["audit_last"] = _spread(
            clients.mark_times(), t_record, complete
        )
    await server.control.ok()  # the publish (seed answers once its fan-out is done)
    if audit:
        await server.control.ok()
    return sample


def _figures(idle: list[float], busy: list[float]) -> dict[str, float | None]:
    finite = [v for v in idle if not math.isinf(v)]
    base = statistics.median(finite) if finite else math.inf
    delays = [v - base for v in busy]
    return {
        "idle_p50_ms": pct(idle, 0.5),
        "idle_p99_ms": pct(idle, 0.99),
        "during_p50_ms": pct(busy, 0.5),
        "during_p99_ms": pct(busy, 0.99),
        "delay_p50_ms": pct(delays, 0.5),
        "delay_p99_ms": pct(delays, 0.99),
    }


_LABELS = {
    "handshake": "handshake (connect -> `connected`)",
    "audit_first": "audit push, first client",
    "audit_last": "audit push, last client",
}


def report(rows: list[dict[str, Any]]) -> Section:
    summary, targets = [], []
    lines = [
        "| kind | N | what | idle p50 / p99 ms | during p50 / p99 ms | delay p50 / p99 ms "
        "| target | result |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['kind']} | {row['n']} | error: {row['error']} | | | | | |")
            continue
        for name in METRICS:
            if name not in row:
                continue
            f = row[name]
            judged = name != "audit_last"
            target = f"delay p99 <= {TARGET_MS:g} ms" if judged else "(reported)"
            result = verdict(f["delay_p99_ms"], TARGET_MS) if judged else "-"
            if judged:
                result += "" if row["kind"] == "adminstats" else " (contrast)"
            entry = {"kind": row["kind"], "n": row["n"], "what": name, **f, "result": result}
            summary.append(entry)
            if judged and row["kind"] == "adminstats":
                targets.append(
                    {
                        "target": f"{name} during a {row['n']}-client fan-out: delayed by at "
                        f"most {TARGET_MS:g} ms (p99 over {len(row['samples']['idle'][name])})",
                        "value": f["delay_p99_ms"],
                        "result": result,
                    }
                )
            lines.append(
                f"| {row['kind']} | {row['n']} | {_LABELS[name]} "
                f"| {cell(f['idle_p50_ms'])} / {cell(f['idle_p99_ms'])} "
                f"| {cell(f['during_p50_ms'])} / {cell(f['during_p99_ms'])} "
                f"| {cell(f['delay_p50_ms'])} / {cell(f['delay_p99_ms'])} | {target} | {result} |"
            )
    fanouts = ", ".join(
        f"{r['kind']} {cell(r.get('fanout_p50_ms'))} / {cell(r.get('fanout_p99_ms'))} ms"
        for r in rows
        if "error" not in r
    )
    lines += [
        "",
        f"The concurrent fan-out itself (t0 -> last client, p50 / p99): {fanouts}. Handshake:"
        " timed inside the probe process (CPU 1, its own event loop) from its TCP connect to"
        " the `connected` message. Audit push: from just before `record` is sent to the"
        " first / last of the N clients receiving `audit_action`; `record_action` commits"
        " its INSERT (SQLite) first. Delay: during minus the median idle value of the same"
        " run; p99 is nearest rank (with 10 rounds, the worst). No permessage-deflate offered.",
    ]
    return Section(summary, targets, lines)


@scenario("during", plan=plan, report=report)
async def during(case: Case) -> dict[str, Any]:
    """A handshake and an audit push while a fan-out is under way."""
    audit = case.kind == "adminstats"
    timeout = 5 + case.n / 250
    mark = AUDIT_MARK if audit else None
    async with (
        connected(case, mark=mark) as (server, clients, row),
        Probe(server.port, client_headers()) as probe,
    ):
        # First-use costs (the probe's, the server's first record and publish) stay out.
        _handshake_ms(await probe.open())
        if audit:
            await _audit_alone(server, clients, timeout)
        await publish_round(server, clients, case.n)
        idle: dict[str, list[float]] = {name: [] for name in METRICS}
        busy: dict[str, list[float]] = {name: [] for name in (*METRICS, "fanout")}
        for _ in range(case.options["rounds"]):
            idle["handshake"].append(_handshake_ms(await probe.open()))
            await asyncio.sleep(QUIET)
            if audit:
                first, last = await _audit_alone(server, clients, timeout)
                idle["audit_first"].append(first)
                idle["audit_last"].append(last)
                await asyncio.sleep(QUIET)
            for name, value in (await _together(server, clients, probe, audit, timeout)).items():
                busy[name].append(value)
            await asyncio.sleep(QUIET + GAP)
        row["samples"] = {"idle": idle, "during": busy}
        row["lost_connections"] = clients.lost
        for name in METRICS:
            if idle[name]:
                row[name] = _figures(idle[name], busy[name])
        row["fanout_p50_ms"] = pct(busy["fanout"], 0.5)
        row["fanout_p99_ms"] = pct(busy["fanout"], 0.99)
        hs = row["handshake"]
        row["headline"] = (
            f"handshake idle/during p50 {hs['idle_p50_ms']}/{hs['during_p50_ms']} ms, "
            f"delay p99 {hs['delay_p99_ms']} ms"
            + (f"; audit first delay p99 {row['audit_first']['delay_p99_ms']} ms" if audit else "")
            + f"; fan-out p50 {row['fanout_p50_ms']} ms"
        )
        return row
