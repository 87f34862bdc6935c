"""Fan-out benchmark: a ~1.5 KB snapshot to N idle WebSocket clients, and what else happens
while it runs (handshakes, audit pushes, clients that stop reading).

    ulimit -n "$(ulimit -Hn)"
    python bench/fanout.py --smoke            # every scenario, small and short (< 60 s)
    python bench/fanout.py                    # every scenario at full size
    python bench/fanout.py --scenario fanout --only adminstats --only ceiling --n 1000
    python bench/fanout.py --scenario during --scenario stalled --scenario audit

Scenarios (``--scenario``, repeatable; default all, in this order):

- ``fanout`` (bench/scenario_fanout.py): the table of five kinds of server (bench/servers.py:
  adminstats, seed, chat, bare, ceiling) x N x permessage-deflate offered x repetitions.
- ``during`` (bench/scenario_during.py): a new handshake and an audit push while a
  5000-client fan-out is under way, against the same with no fan-out.
- ``stalled`` (bench/scenario_stalled.py): healthy clients' p99 and server RSS over 120 s
  when 1% of the clients stop reading.
- ``audit`` (bench/scenario_audit.py): audit action -> client receipt at N=1000 on the
  memory, Redis and PostgreSQL buses.
- ``workers`` (bench/scenario_workers.py; not in the default order, only by name:
  ``--scenario workers --out bench/results/workers``): deliveries per second at N=5000 on
  a Redis bus with one server process and with ``uvicorn --workers 2``.
- ``paired`` (bench/scenario_paired.py; only by name): CPU per delivery of adminstats and
  the seed's loop, both servers up at once, publishes alternating (issue 13, goal 1).
- ``stalled-paired`` (bench/scenario_stalled_paired.py; only by name: ``--scenario
  stalled-paired --out bench/results/stalled-paired``): ``stalled``'s comparison on one
  server, 20-s phases with and without 1% of the clients stalled alternating A B B A.

Each server runs in its own process on CPU 0; this process is the load generator
(bench/loadgen.py) on CPU 1. Results: bench/results/fanout.json and fanout.md when the
fan-out table is among the scenarios, else bench/results/scenarios.json and .md (or
``--out PREFIX``); ``--smoke`` only prints unless ``--out``. Redis and PostgreSQL are
used where reachable; ``ADMINSTATS_REQUIRE_SERVICES=1`` makes them required.
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script from anywhere

import scenario_audit  # noqa: F401  (registers "audit")
import scenario_during  # noqa: F401  (registers "during")
import scenario_paired  # noqa: F401  (registers "paired"; not in ORDER)
import scenario_stalled  # noqa: F401  (registers "stalled")
import scenario_stalled_paired  # noqa: F401  (registers "stalled-paired"; not in ORDER)
import scenario_workers  # noqa: F401  (registers "workers"; not in ORDER)
from harness import SCENARIOS, Case, Section
from report import build, markdown, package_digest
from scenario_fanout import SUMS, grid, section
from server_process import snapshot_file
from servers import KINDS, LOOP_CHOICES, WS_CHOICES, pin, raise_fd_limit

RESULTS = Path(__file__).resolve().parent / "results"
ORDER = ("fanout", "during", "stalled", "audit")


def plan(args: argparse.Namespace, name: str, snapshot: Path) -> list[Case]:
    spec = SCENARIOS[name]
    return (spec.plan or grid)(args, snapshot)


ATTEMPTS = 2  # per case


async def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    # SIGTERM cancels the run like Ctrl-C does, so every server is killed on the way out.
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    rows: list[dict[str, Any]] = []
    async with snapshot_file() as snapshot:
        for name in args.scenario:
            for case in plan(args, name, snapshot):
                for attempt in range(1, ATTEMPTS + 1):
                    started = time.perf_counter()
                    digest = package_digest()  # the package may change under a long run
                    try:
                        row = await SCENARIOS[name].run(case)
                    except Exception as exc:  # one failed case must not hide the others
                        row = {**asdict(case), "error": f"{type(exc).__name__}: {exc}"}
                        row.pop("snapshot")
                    row["scenario"], row["package_digest"] = name, digest
                    row["attempt"] = attempt
                    print(progress(row, time.perf_counter() - started), flush=True)
                    if "error" not in row or attempt == ATTEMPTS:
                        rows.append(row)
                        break
                    # A fresh server once more (a port taken meanwhile, say): the medians
                    # need every repetition; a second failure is reported as such.
                    await asyncio.sleep(1)
    return rows


def progress(row: dict[str, Any], seconds: float) -> str:
    what = (
        f"{row['scenario']:>7} {row['kind']:>10} N={row['n']:<5} "
        f"deflate={'yes' if row['deflate'] else 'no':<3} rep {row['rep']}"
    )
    if options := row.get("options"):
        what += " " + " ".join(f"{k}={v}" for k, v in options.items())
    if "error" in row:
        return f"{what}: ERROR {row['error']} ({seconds:.1f} s)"
    figures = row.get("headline") or f"rss {row.get('rss_per_conn_kib')} KiB/conn"
    return f"{what}: {figures} ({seconds:.1f} s)"


def sections(rows: list[dict[str, Any]], names: list[str]) -> dict[str, Section]:
    found = {}
    for name in names:
        report = SCENARIOS[name].report or section
        found[name] = report([r for r in rows if r["scenario"] == name])
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="every scenario small and short")
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable (default: all)"
    )
    parser.add_argument("--only", action="append", choices=KINDS, help="kinds; repeatable")
    parser.add_argument("--n", type=int, action="append", help="clients; repeatable")
    parser.add_argument("--reps", type=int, help="fanout, paired, stalled-paired: repetitions")
    parser.add_argument("--publishes", type=int, help="fanout: publishes per run")
    parser.add_argument("--rounds", type=int, help="during: repetitions; audit: actions")
    parser.add_argument(
        "--window", type=float, help="stalled: seconds of publishing; stalled-paired: per condition"
    )
    parser.add_argument(
        "--deflate", choices=("both", "on", "off"), default="both", help="fanout: offered"
    )
    parser.add_argument("--ws", choices=WS_CHOICES, default="auto", help="uvicorn's ws option")
    parser.add_argument("--no-deflate", action="store_true", help="servers refuse deflate")
    parser.add_argument("--loop", choices=LOOP_CHOICES, default="uvloop", help="servers' loop")
    parser.add_argument(
        "--setting", action="append", default=[], help="adminstats: NAME=VALUE (repeatable)"
    )
    parser.add_argument("--note", default="", help="a line for the results (what was tested)")
    parser.add_argument("--out", type=Path, help="results path prefix (see above)")
    parser.add_argument(
        "--render", type=Path, metavar="JSON", help="rewrite a result's .json and .md from its rows"
    )
    args = parser.parse_args()
    if args.render is not None:
        render(args.render)
        return
    args.scenario = args.scenario or [name for name in ORDER if name in SCENARIOS]
    args.scenario = [name for name in ORDER if name in args.scenario] + [
        name for name in args.scenario if name not in ORDER
    ]
    args.asked = {"reps": args.reps, "publishes": args.publishes}  # before the defaults
    args.reps = args.reps or (1 if args.smoke else 3)  # fanout's; the others have their own
    args.publishes = args.publishes or (2 if args.smoke else 20)
    args.server_args = (
        "--ws",
        args.ws,
        "--loop",
        args.loop,
        *(f"--setting={item}" for item in args.setting),
        *(("--no-deflate",) if args.no_deflate else ()),
    )
    if args.out is None and not args.smoke:
        args.out = RESULTS / ("fanout" if "fanout" in args.scenario else "scenarios")
    limit = raise_fd_limit()
    most = max(case.n for name in args.scenario for case in plan(args, name, Path()))
    if most + 100 > limit:
        parser.error(f"N={most} needs more file descriptors than the limit {limit}")
    pinned = pin(1)

    import uvloop

    started = time.perf_counter()
    try:
        rows = uvloop.run(run(args))
    except (asyncio.CancelledError, KeyboardInterrupt):
        sys.exit("fanout: interrupted (every server it started is stopped)")
    found = sections(rows, args.scenario)
    result = build(rows, args, pinned=pinned, seconds=time.perf_counter() - started, sections=found)
    text = markdown(result, found)
    if args.out is not None:  # written before printing: a closed stdout must not lose them
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(text)
    print(text)
    if any("error" in row or any(row.get(key) for key in SUMS) for row in rows):
        sys.exit(1)


def render(path: Path) -> None:
    """The .json and .md of a finished run again, from its rows, with the report code as
    it is now (a corrected summary or interval without running the servers again)."""
    result = json.loads(path.read_text())
    rows = result["runs"] + [r for s in result["scenarios"].values() for r in s["runs"]]
    found = sections(rows, [n for n in SCENARIOS if any(r["scenario"] == n for r in rows)])
    for name, part in found.items():
        if name in result["scenarios"]:
            result["scenarios"][name].update(summary=part.summary, targets=part.targets)
        else:
            result.update(summary=part.summary, targets=part.targets)
    path.write_text(json.dumps(result, indent=2) + "\n")
    path.with_suffix(".md").write_text(markdown(result, found))


if __name__ == "__main__":
    main()
