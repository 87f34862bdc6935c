"""``stalled-paired``: healthy clients' fan-out completion with 1% of the clients stalled
against none, on one server, in alternating phases.

    ulimit -n "$(ulimit -Hn)"
    python bench/fanout.py --scenario stalled-paired --out bench/results/stalled-paired

Why: ``stalled`` compares two fresh servers run one after the other, a 120-s window each.
The heartbeat (10 s / 5 s) closes its stalled clients (4408) 10-15 s into the window, so
most of the "stalled" window has none left, and a slow stretch of this shared machine
lands on one window only: 1.02, 1.13 and 1.07 in three runs, against a 1.10 target.

Method: one adminstats server (``stalled``'s settings: heartbeat 10 s / 5 s, notification
queue 100) with N clients, and phases of 20 s alternating A B B A over pairs (pair i is
stalled, none for even i and none, stalled for odd i): a drift of the machine falls on
both conditions. Before each phase, an unmeasured gap of 2 s: the previous phase's k =
1% extra clients are dropped (client-side abort; for the first phase, k of the clients
connected at the start) and k fresh ones connect and get their welcome, so every phase
starts with N connections, k of them about 2 s old. In a stalled phase those k stop
reading at its start, and the heartbeat pings them 10 s after they connected and closes
them 5 s later, about 13 s into the phase; in a none phase they read like the others
and count as healthy. Within a phase, ``stalled``'s load and measurement (one shared
function): a publish every 0.5 s, an audit action every 1 s (offset 0.25 s), measured on
the healthy clients.

Pooled per condition over its phases: healthy completion p50/p99/max, delivery p50/p99,
audit last-client p50/p99, incomplete and late publishes; per run the completion p99
ratio (stalled / none) against ``stalled``'s target (<= 1.10) and the delivery p99 ratio.
Also per run: the 4408 closes (from ``/metrics``; per phase too: k in each stalled phase
expected), the stalled clients still open at each phase end (the server's session count
minus the open healthy clients: 0 expected), full GC pauses, RSS at start and end, and
each phase's publishes (the timeline, in the JSON).

Default: N=5000 (``--n``, repeatable), 6 pairs (12 phases: 120 s and 240 publishes per
condition, as ``stalled``'s window), 3 runs (``--reps``), each a fresh server: about 4.5
minutes per run at N=5000. ``--window S``: S seconds per condition, that is round(S / 20)
pairs (at least 1). ``--smoke``: N=50, 1 pair of 2-s phases, 0.3-s gaps, heartbeat
1 s / 0.5 s. ``ADMINSTATS_BENCH_STALLED_PCT=0``: the method's own check (A/A), the same
phases and swaps with no client stalled (``--out bench/results/stalled-paired-aa``).
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from harness import (
    AUDIT_MARK,
    WELCOME,
    Case,
    Section,
    cell,
    connected,
    count_until,
    pct,
    publish_round,
    scenario,
    verdict,
)
from loadgen import Clients, Conn
from scenario_stalled import (
    RATIO,
    Window,
    closes,
    collections,
    figures,
    heartbeat,
    measure,
    server_args,
    until,
)
from server_process import ServerProcess
from servers import KINDS

PHASE_S = 20.0  # seconds per phase (--smoke: SMOKE_PHASE_S)
GAP_S = 2.0  # unmeasured, before each phase: the extra clients swapped (--smoke: SMOKE_GAP_S)
SMOKE_PHASE_S, SMOKE_GAP_S = 2.0, 0.3
PAIRS = 6  # 12 phases: 120 s per condition
STALLED_PCT = 1
#: ``ADMINSTATS_BENCH_STALLED_PCT=0``: the method's own check (A/A). Every phase swaps its
#: k = 1% extra clients as usual, but none stops reading: both conditions are "none", and
#: the ratios show what the machine alone does to a p99 of 240 publishes.
AA_ENV = "ADMINSTATS_BENCH_STALLED_PCT"
TIMEOUT_4408 = "4408"  # adminstats' close code for a heartbeat timeout
CONDITIONS = ("none", "stalled")


def plan(args: argparse.Namespace, snapshot: Path) -> list[Case]:
    ns = args.n or ([50] if args.smoke else [5000])
    reps = args.asked["reps"] or (1 if args.smoke else 3)
    phase_s, gap_s = (SMOKE_PHASE_S, SMOKE_GAP_S) if args.smoke else (PHASE_S, GAP_S)
    pairs = max(1, round(args.window / phase_s)) if args.window else 1 if args.smoke else PAIRS
    interval, timeout = heartbeat(args.smoke)
    settle = 0.1 if args.smoke else 0.5
    options = {
        "stalled_pct": int(os.environ.get(AA_ENV, STALLED_PCT)),
        "phase_s": phase_s,
        "gap_s": gap_s,
        "pairs": pairs,
        "heartbeat": f"{interval:g}/{timeout:g}",
    }
    return [
        Case(KINDS[0], n, False, 0, rep, snapshot, server_args(args), settle, options)
        for rep in range(reps)
        for n in ns
    ]


def phase_kinds(pairs: int) -> list[str]:
    """A B B A: pair i is (stalled, none) for even i, (none, stalled) for odd i."""
    return [
        kind
        for i in range(pairs)
        for kind in (("stalled", "none") if i % 2 == 0 else ("none", "stalled"))
    ]


async def swap(
    server: ServerProcess, clients: Clients, old: list[Conn], n: int, deflate: bool
) -> list[Conn]:
    """Drop ``old``, connect as many fresh clients, wait for their welcome messages and for
    the server to count exactly ``n`` sessions again (the dropped ones gone); the fresh
    connections."""
    clients.drop(old)
    opened = len(clients.conns)
    await clients.connect(len(old), deflate=deflate)
    fresh = clients.conns[opened:]
    timeout = 10 + len(fresh) / 200
    if not await clients.wait_frames(WELCOME[server.kind], timeout):
        raise RuntimeError(f"{server.kind}: fresh clients' welcome missing after {timeout} s")
    await count_until(server, lambda count: count == n, timeout)
    return fresh


@scenario("stalled-paired", plan=plan, report=lambda rows: report(rows))
async def stalled_paired(case: Case) -> dict[str, Any]:
    """Healthy clients' completion with 1% stalled against none, alternating phases."""
    n = case.n
    share = case.options["stalled_pct"]
    k = max(1, round(n * (share or STALLED_PCT) / 100))  # swapped in every gap, even A/A
    phase_s, gap_s = float(case.options["phase_s"]), float(case.options["gap_s"])
    kinds = phase_kinds(int(case.options["pairs"]))
    async with connected(case, mark=AUDIT_MARK, app_pong=True) as (server, clients, row):
        await publish_round(server, clients, n)  # first-use costs stay out
        await server.command("gc-collect")  # the collection due after N connections
        records = await server.channel()
        extra = clients.conns[-k:]  # the first gap swaps these, as each gap does the last k
        run_before = await server.metrics()
        gc_run = json.loads(await server.command("gc"))
        rss_start = server.rss()
        run_start = time.perf_counter()
        windows: dict[str, list[Window]] = {kind: [] for kind in CONDITIONS}
        phases: list[dict[str, Any]] = []
        healthy_lost = 0
        for kind in kinds:
            gap_start = time.perf_counter()
            healthy_lost += sum(c.closed for c in extra if not c.stalled)
            extra = await swap(server, clients, extra, n, case.deflate)
            await until(gap_start + gap_s)  # a slow swap makes a longer gap, never a shorter
            before = await server.metrics()
            gc_before = json.loads(await server.command("gc"))
            if kind == "stalled" and share:
                clients.stall_conns(extra)
            start = time.perf_counter() + 0.05
            window = await measure(server, records, clients, start, phase_s)
            await until(start + phase_s)  # the last publish's slot too: phase_s in all
            after = await server.metrics()
            gc_after = json.loads(await server.command("gc"))
            # Sessions the server still holds beyond the healthy clients that are open:
            # in a stalled phase, the stalled clients the heartbeat has not closed yet.
            left_open = await server.count() - len(clients.active)
            windows[kind].append(window)
            completion = window.completion
            phases.append(
                {
                    "kind": kind,
                    "start_s": round(start - run_start, 3),
                    "gap_s": round(start - gap_start, 3),
                    "completion_p50_ms": pct(completion, 0.5),
                    "completion_max_ms": pct(completion, 1.0),
                    "closes": closes(before, after),
                    "left_open": left_open,
                    "full_gc_ms": collections(gc_before, gc_after)["gc_full_pauses_ms"],
                    "rss_kib": round(server.rss() / 1024),
                    "publishes": window.timeline,  # (s into the phase, completion ms)
                }
            )
        healthy_lost += sum(c.closed for c in clients.conns if not c.stalled)
        run_after = await server.metrics()
        row.update(collections(gc_run, json.loads(await server.command("gc"))))
        pooled = {kind: figures(windows[kind]) for kind in CONDITIONS}
        stalled_phases = [p for p in phases if p["kind"] == "stalled"]
        row.update(
            {
                "k": k,
                "phases": len(phases),
                "pooled": pooled,
                "p99_ratio": _ratio(pooled, "completion_p99_ms"),
                "delivery_p99_ratio": _ratio(pooled, "delivery_p99_ms"),
                "closes": closes(run_before, run_after),
                "closes_4408_by_stalled_phase": [
                    p["closes"].get(TIMEOUT_4408, 0) for p in stalled_phases
                ],
                "closes_4408_expected": k * len(stalled_phases) if share else 0,
                "left_open_by_phase": [p["left_open"] for p in phases],
                "stalled_left_open": sum(p["left_open"] for p in stalled_phases),
                "healthy_lost": healthy_lost,
                "rss_start_kib": round(rss_start / 1024),
                "rss_end_kib": round(server.rss() / 1024),
                "timeline": phases,
            }
        )
        row["closes_4408"] = row["closes"].get(TIMEOUT_4408, 0)
        row["headline"] = (
            f"healthy completion p99 none/stalled {pooled['none']['completion_p99_ms']}/"
            f"{pooled['stalled']['completion_p99_ms']} ms = x{row['p99_ratio']}, delivery "
            f"p99 x{row['delivery_p99_ratio']}; 4408 closes {row['closes_4408']} "
            f"(expected {row['closes_4408_expected']}), stalled left open "
            f"{row['left_open_by_phase']}, full GCs {len(row['gc_full_pauses_ms'])}, "
            f"rss {row['rss_start_kib']}->{row['rss_end_kib']} KiB"
        )
        return row


def _ratio(pooled: dict[str, dict[str, Any]], key: str) -> float | None:
    test, base = pooled["stalled"][key], pooled["none"][key]
    return None if test is None or not base else round(test / base, 3)


def _pooled_p99_ratio(runs: list[dict[str, Any]]) -> float | None:
    """Completion p99 over every run's publishes of a condition, stalled / none."""
    found: dict[str, list[float]] = {kind: [] for kind in CONDITIONS}
    for r in runs:
        for phase in r["timeline"]:
            found[phase["kind"]] += [ms for _, ms in phase["publishes"]]
    test, base = pct(found["stalled"], 0.99), pct(found["none"], 0.99)
    return None if test is None or not base else round(test / base, 3)


def report(rows: list[dict[str, Any]]) -> Section:
    lines = [
        "| N | run | healthy completion p50 / p99 ms: none | with 1% stalled "
        "| completion p99 stalled / none | delivery p99 stalled / none "
        "| audit last client p99 ms: none / stalled "
        "| incomplete (late) publishes: none / stalled | 4408 closes (expected) "
        "| stalled left open at phase ends | full GCs (longest ms) |",
        "| --- " * 11 + "|",
    ]
    summary: list[dict[str, Any]] = []
    targets: list[dict[str, Any]] = []
    unclosed: list[str] = []
    for r in sorted(rows, key=lambda r: (r["n"], r["rep"])):
        if "error" in r:
            lines.append(f"| {r['n']} | {r['rep']} | error: {r['error']} |" + " |" * 8)
            continue
        none, stalled = r["pooled"]["none"], r["pooled"]["stalled"]
        lines.append(
            f"| {r['n']} | {r['rep']} "
            f"| {cell(none['completion_p50_ms'])} / {cell(none['completion_p99_ms'])} "
            f"| {cell(stalled['completion_p50_ms'])} / {cell(stalled['completion_p99_ms'])} "
            f"| {cell(r['p99_ratio'])} | {cell(r['delivery_p99_ratio'])} "
            f"| {cell(none['audit_last_p99_ms'])} / {cell(stalled['audit_last_p99_ms'])} "
            f"| {none['incomplete_publishes']} ({none['late_publishes']}) / "
            f"{stalled['incomplete_publishes']} ({stalled['late_publishes']}) "
            f"| {r['closes_4408']} ({r['closes_4408_expected']}) "
            f"| {r['stalled_left_open']} "
            f"| {len(r['gc_full_pauses_ms'])} ({cell(r['gc_longest_pause_ms'])}) |"
        )
        per_phase = r["closes_4408_by_stalled_phase"]
        wanted = r["k"] if r["options"]["stalled_pct"] else 0
        if r["stalled_left_open"] or any(c != wanted for c in per_phase):
            unclosed.append(
                f"N={r['n']} run {r['rep']}: 4408 closes per stalled phase {per_phase}"
                f" (k={r['k']}), left open at each phase end {r['left_open_by_phase']}"
            )
        targets.append(
            {
                "target": f"N={r['n']} run {r['rep']}: healthy completion p99 with "
                f"{r['options']['stalled_pct']}% stalled <= {RATIO:g}x without",
                "value": r["p99_ratio"],
                "result": verdict(r["p99_ratio"], RATIO),
            }
        )
        summary.append(
            {
                "n": r["n"],
                "rep": r["rep"],
                "p99_ratio": r["p99_ratio"],
                "delivery_p99_ratio": r["delivery_p99_ratio"],
                "closes_4408": r["closes_4408"],
                "closes_4408_expected": r["closes_4408_expected"],
                "stalled_left_open": r["stalled_left_open"],
                "healthy_lost": r["healthy_lost"],
                "full_gcs": len(r["gc_full_pauses_ms"]),
            }
        )
    lines += ["", "| target | measured | result |", "| --- | --- | --- |"]
    lines += [f"| {t['target']} | {cell(t['value'])} | {t['result']} |" for t in targets]
    lines.append("")
    for n in sorted({r["n"] for r in rows}):
        runs = [r for r in rows if r["n"] == n]
        within = sum(r.get("p99_ratio") is not None and r["p99_ratio"] <= RATIO for r in runs)
        share = round((RATIO - 1) * 100)
        pooled = _pooled_p99_ratio([r for r in runs if "error" not in r])
        lines.append(
            f"N={n}: runs within {share}%: {within} of {len(runs)}; every run's publishes"
            f" pooled, completion p99 stalled / none: {cell(pooled)}."
        )
        summary.append(
            {"n": n, "rep": "all", "runs_within": within, "runs": len(runs), "p99_ratio": pooled}
        )
    lines.append("")
    if unclosed:
        lines.append("Stalled clients NOT all closed (4408) within their phase: ")
        lines += [f"- {line}" for line in unclosed]
    elif summary:
        lines.append(
            "Every stalled client was closed (4408) within its phase: k closes in each"
            " stalled phase, none left open at any phase end."
        )
    return Section(summary, targets, [*lines, "", *NOTES])


NOTES = (
    "One server, N clients, phases alternating A B B A (stalled, none, none, stalled, ...)"
    " so a slow stretch of this shared machine falls on both conditions; before each phase"
    " an unmeasured gap swaps the k = 1% extra clients for fresh ones, which in a stalled"
    " phase stop reading at its start and are closed by the heartbeat (4408) about 13 s"
    " into it (in a none phase they read and count as healthy). A phase holds `stalled`'s"
    " load, measured the same way (one shared function): a publish every 0.5 s, an audit"
    " action every 1 s; completion = publish trigger -> the last healthy client's receipt."
    " Each condition's figures pool its phases (nearest rank: with 240 publishes p99 is the"
    " third worst); the ratio is p99 with stalled / p99 without, per run. Stalled left"
    " open: the server's session count at a phase end minus the open healthy clients."
    " Full GCs: generation-2 collections in the server over the run (after one collected"
    " before it). No permessage-deflate.",
)
