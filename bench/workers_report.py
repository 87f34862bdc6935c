"""The ``workers`` scenario's section of the results (bench/scenario_workers.py)."""

from __future__ import annotations

import statistics
from typing import Any

from harness import Section, cell

__all__ = ["PACINGS", "TARGET", "WORKERS", "config_of", "report", "summarize"]

TARGET = 1.7  # 2 workers / 1 worker (issue 13, goal 4)
#: (processes, how connections reach them): one process; ``uvicorn --workers 2`` (one
#: shared listening socket); ``asgi_adminstats.server.run(..., workers=2)`` (a
#: SO_REUSEPORT socket per process).
WORKERS = ((1, "one"), (2, "uvicorn"), (2, "reuse-port"))
MODES = {"one": "1 process", "uvicorn": "2, uvicorn --workers", "reuse-port": "2, run(workers=2)"}


def config_of(row: dict[str, Any]) -> tuple[int, str]:
    """A row's (processes, mode); rows from before the modes were uvicorn's."""
    k = row["options"]["workers"]
    return k, row["options"].get("mode", "one" if k == 1 else "uvicorn")


PACINGS = ("server", "clients")  # the target's measure first

MEDIANS = (
    "deliveries_per_s",
    "received_per_s",
    "round_ms",
    "server_cpu_ms_per_1000",
    "server_cpu_share",
    "loadgen_cpu_share",
    "loadgen_cpu_us_per_frame",
    "other_cpu_share",
    "setup_s",
)
SUMS = ("losses", "extra_frames", "lost_connections")


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per N x pacing x workers, and the 2 / 1 ratio of each pacing."""
    ok = [r for r in rows if "error" not in r and "skipped" not in r]
    keys = sorted(
        {(r["n"], r["options"]["pacing"]) for r in rows}, key=lambda k: (k[0], PACINGS.index(k[1]))
    )
    summary = []
    for n, pacing in keys:
        for k, mode in WORKERS:
            group = [
                r
                for r in ok
                if (r["n"], r["options"]["pacing"]) == (n, pacing) and config_of(r) == (k, mode)
            ]
            if not group and mode == "reuse-port":
                continue  # a run from before run(workers=K) existed
            entry: dict[str, Any] = {"n": n, "pacing": pacing, "workers": k, "mode": mode}
            entry["repetitions"] = len(group)
            for key in MEDIANS:
                values = [r[key] for r in group if r.get(key) is not None]
                entry[key] = round(statistics.median(values), 3) if values else None
            for key in SUMS:
                entry[key] = sum(r.get(key, 0) for r in group)
            entry["per_worker"] = [r["per_worker"] for r in group if "per_worker" in r]
            summary.append(entry)
    return summary


def report(rows: list[dict[str, Any]]) -> Section:
    summary = summarize(rows)
    lines = [
        "| N | next publish waits for | processes | deliveries / s (server side) | received / s "
        "(all included) | ms / publish | server CPU ms / 1000 | server CPU (cores) | loadgen "
        "CPU share | loadgen µs / frame | other CPU (cores) | clients per worker | losses |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for e in summary:
        splits = "; ".join("/".join(map(str, s)) for s in e["per_worker"]) or "-"
        lost = e["losses"] + e["extra_frames"]
        lost_text = f"{lost}" + (
            f", {e['lost_connections']} dropped" if e["lost_connections"] else ""
        )
        lines.append(
            f"| {e['n']} | {PACED[e['pacing']]} | {MODES[e['mode']]} "
            f"| {cell(e['deliveries_per_s'])} "
            f"| {cell(e['received_per_s'])} | {cell(e['round_ms'])} "
            f"| {cell(e['server_cpu_ms_per_1000'])} | {cell(e['server_cpu_share'])} "
            f"| {cell(e['loadgen_cpu_share'])} | {cell(e['loadgen_cpu_us_per_frame'])} "
            f"| {cell(e['other_cpu_share'])} | {splits} | {lost_text} |"
        )
    targets = []
    for n, pacing in dict.fromkeys((e["n"], e["pacing"]) for e in summary):
        mine = [e for e in summary if (e["n"], e["pacing"]) == (n, pacing)]
        one = next(e for e in mine if e["workers"] == 1)
        for two in (e for e in mine if e["workers"] == 2):
            base, value = one["deliveries_per_s"], two["deliveries_per_s"]
            ratio = None if not base or value is None else round(value / base, 2)
            clean = not (
                one["losses"] or two["losses"] or one["extra_frames"] or two["extra_frames"]
            )
            result = (
                "n/a" if ratio is None or not clean else ("pass" if ratio >= TARGET else "miss")
            )
            what = f"N={n}, {PACED[pacing]}: {MODES[two['mode']]} / 1 process >= {TARGET}"
            judged = pacing == PACINGS[0]  # the target's measure; the other is for contrast
            targets.append(
                {"target": what, "value": ratio, "result": result if judged else "(contrast)"}
            )
    lines += ["", "| target | measured | result |", "| --- | --- | --- |"]
    lines += [f"| {t['target']} | {cell(t['value'])} | {t['result']} |" for t in targets]
    for r in rows:
        if "error" in r or "skipped" in r:
            lines.append("")
            lines.append(
                f"{r['options']['pacing']}, {MODES[config_of(r)[1]]}, rep {r['rep']}: "
                f"{r.get('error') or r.get('skipped')}"
            )
    return Section(summary, targets, [*lines, "", *NOTES])


PACED = {"server": "the server's fan-out", "clients": "every client"}
NOTES = (
    "Redis bus, permessage-deflate off, one ~1.5 KB snapshot per publish, one publish at a"
    " time. The server's fan-out: the next publish once every worker's hub handed the"
    " frame to every client's socket, the load generator reading in bulk after every 10"
    " (not timed); every client: once every client received it, the load generator"
    " reading as frames come. Deliveries / s: N x publishes / timed publishing; received"
    " / s: frames received / everything. 1 worker: server pinned to CPU 0, load generator"
    " CPU 1; 2 workers (`uvicorn --workers 2`, one listening socket the two accept"
    " from; or `asgi_adminstats.server.run(..., workers=2)`, a SO_REUSEPORT socket each,"
    " the same protocol and limits otherwise): nothing pinned. Server CPU is summed over"
    " the worker processes; CPU shares are in cores (the load generator's over the timed"
    " part); other CPU: the machine's busy time minus server and load generator (Redis,"
    " uvicorn's supervisor, softirq not charged to a process, other work on the host)."
    " Clients per worker: the kernel's spread of the N accepted connections, per run.",
)
