"""A WebSocket client that stops reading: what each server's send does, and what
asgi_adminstats does about it.

    python bench/stalled_reader.py [--smoke] [--servers NAME ...] [--loop auto|asyncio]
                                   [--json PATH]

Servers: uvicorn with ``--ws websockets`` (the legacy implementation), ``websockets-sansio``
(what ``--ws auto`` picks when websockets is installed) and ``wsproto``; hypercorn
(asyncio worker). Each runs in its own subprocess on 127.0.0.1 and reports JSON lines on
stdout (events, and a sample each second: RSS, the transports' user-space write buffers).
The driver reads ``/proc/net/tcp`` for the kernel side (send queue of the server socket,
receive queue of the client socket) and for when the server's socket goes away.

The stalled client is a raw socket with ``SO_RCVBUF`` 4096 (set before connect) that
writes the upgrade request by hand, reads the response head, and never reads again.

Runs, per server:

- ``bare/close``: a bare Starlette endpoint sends ~1.5 KB text messages as fast as
  ``send_text`` returns (at most N messages or S seconds). A send pending longer than the
  block limit counts as "blocked": it is cancelled and the app calls ``close(1000)``
  (bounded), then returns. Server keepalive at its defaults.
- ``bare/close+uto``: the same with ``TCP_USER_TIMEOUT`` 5 s on the listening socket (the
  accepted sockets inherit it): does the kernel then reap what the server keeps. Full only.
- ``bare/close+sndbuf64k``: the same with ``SO_SNDBUF`` 64 KiB on the listening socket:
  how much less the kernel holds per stalled connection. Full only.
- ``bare/hold+ping1``: short server keepalive (uvicorn ping interval 1 s, timeout 1 s;
  hypercorn ping interval 1 s): the app keeps sending with no timeout of its own: does
  the keepalive release the blocked send and drop the connection.
- ``bare/hold``: the same with the default keepalive (uvicorn 20 s / 20 s). Full only.
- ``component``: AdminStats mounted at /admin/ws; a background task publishes a stats
  snapshot and a notification every 5 ms. Clients: one stalled (both lanes), one stalled
  that unsubscribed from notifications (stats only: only the heartbeat can catch it), one
  healthy (reads everything, answers pings). Afterwards the driver reads each stalled
  socket to see what the server wrote last (a close frame? EOF?).
- ``component+uto``: the same with ``TCP_USER_TIMEOUT`` 10 s on the listening socket.
  Full only.

``--smoke`` runs the short versions of bare/close, bare/hold+ping1 and component for
all servers at once (about 12 s, under 20 s); the full run takes about 4 minutes.
``--runs`` picks runs by name. Results: a Markdown table on stdout, everything with
``--json``.

The component runs are also checks of behaviour (``component_checks``): each stalled
session ends with 4008 or 4408 within heartbeat interval + 2 x timeout + 5 s, with the
close first asked for; no exception comes out of the app; the healthy client keeps
receiving and misses no notification. Any failed check makes the exit status 1, so ``--smoke`` can
guard CI. Its component run sets ``SO_SNDBUF`` 64 KiB on the listening socket and a
3 s / 1 s heartbeat, so the stalled writers block within about a second, long before
the heartbeat fires: the path checked is the stuck writer's.

This file plans and drives the runs; the parts are in bench/stalled/ (server, client,
runs, checks, report) and bench/proc_tcp.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from stalled.common import SERVERS, Run, now
from stalled.report import describe_measured, report
from stalled.runs import bare_run, component_run, watch_tcp
from stalled.server import serve_main


def plans(smoke: bool, servers: list[str], loop: str, tmp: str) -> list[tuple[Run, Any]]:
    msg = 1500
    out: list[tuple[Run, Any]] = []
    bare: dict[str, dict[str, Any]]
    comp: dict[str, Any]
    if smoke:
        bare = {
            "bare/close": dict(mode="close", pings=None, user_timeout_ms=0, send_seconds=3,
                               block_limit=0.5, close_limit=2.0, hold_limit=0, observe=2.0,
                               drain_limit=3.0),
            "bare/hold+ping1": dict(mode="hold", pings=[1.0, 1.0], user_timeout_ms=0,
                                    send_seconds=0, block_limit=0, close_limit=0,
                                    hold_limit=5.0, observe=1.5, drain_limit=3.0),
        }  # fmt: skip
        # SO_SNDBUF 64 KiB: the stalled writers block within about a second, well
        # before the heartbeat (3 s + 1 s), so the stuck-writer path is what is checked.
        comp = dict(heartbeat_interval=3.0, heartbeat_timeout=1.0, notification_queue=100,
                    publish_every=0.005, publish_seconds=6.0, observe=2.0, drain_limit=2.0,
                    pings=None, sndbuf=65536)  # fmt: skip
    else:
        bare = {
            "bare/close": dict(mode="close", pings=None, user_timeout_ms=0, send_seconds=20,
                               block_limit=2.0, close_limit=40.0, hold_limit=0, observe=25.0,
                               drain_limit=10.0),
            "bare/close+uto": dict(mode="close", pings=None, user_timeout_ms=5000,
                                   send_seconds=20, block_limit=2.0, close_limit=40.0,
                                   hold_limit=0, observe=25.0, drain_limit=10.0),
            "bare/close+sndbuf64k": dict(mode="close", pings=None, user_timeout_ms=0,
                                         sndbuf=65536, send_seconds=20, block_limit=2.0,
                                         close_limit=40.0, hold_limit=0, observe=25.0,
                                         drain_limit=10.0),
            "bare/hold+ping1": dict(mode="hold", pings=[1.0, 1.0], user_timeout_ms=0,
                                    send_seconds=0, block_limit=0, close_limit=0,
                                    hold_limit=30.0, observe=10.0, drain_limit=10.0),
            "bare/hold": dict(mode="hold", pings=None, user_timeout_ms=0, send_seconds=0,
                              block_limit=0, close_limit=0, hold_limit=50.0, observe=5.0,
                              drain_limit=10.0),
        }  # fmt: skip
        comp = dict(heartbeat_interval=10.0, heartbeat_timeout=5.0, notification_queue=100,
                    publish_every=0.005, publish_seconds=30.0, observe=5.0, drain_limit=5.0,
                    pings=None)  # fmt: skip
    for kind, params in bare.items():
        for server in servers:
            spec: dict[str, Any] = {
                "app": "bare",
                "server": server,
                "loop": loop,
                "msg_size": msg,
                "max_messages": 20_000,
                "sample_every": 1.0,
                **params,
            }
            spec["app_limit"] = spec["send_seconds"] + spec["close_limit"] + spec["hold_limit"] + 5
            spec["life"] = spec["app_limit"] + spec["observe"] + spec["drain_limit"] + 10
            out.append((Run(kind, server, spec), bare_run))
    component_runs = {"component": 0} if smoke else {"component": 0, "component+uto": 10_000}
    for (kind, user_timeout), server in itertools.product(component_runs.items(), servers):
        spec = {
            "app": "component",
            "server": server,
            "loop": loop,
            "msg_size": msg,
            "user_timeout_ms": user_timeout,
            "sample_every": 1.0,
            "db_dir": tempfile.mkdtemp(prefix=f"stalled-{server}-", dir=tmp),
            **comp,
        }
        spec["life"] = spec["publish_seconds"] + spec["observe"] + spec["drain_limit"] * 3 + 15
        out.append((Run(kind, server, spec), component_run))
    return out


async def drive(
    smoke: bool, servers: list[str], loop: str, runs: list[str] | None
) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="stalled-reader-") as tmp:
        todo = [
            (run, job)
            for run, job in plans(smoke, servers, loop, tmp)
            if runs is None or run.kind in runs
        ]

        watcher = asyncio.create_task(watch_tcp(0.25))
        try:
            return await _drive(smoke, todo)
        finally:
            watcher.cancel()
            with contextlib.suppress(BaseException):
                await watcher


async def _drive(smoke: bool, todo: list[tuple[Run, Any]]) -> list[dict[str, Any]]:
    async def one(run: Run, job: Any) -> dict[str, Any]:
        try:
            await job(run)
        except Exception as exc:
            run.result.update(
                server=run.server,
                run=run.kind,
                error=f"{type(exc).__name__}: {exc}",
                stderr_tail=run.stderr[-15:],
            )
        return run.result

    bare = [one(run, job) for run, job in todo if run.kind != "component"]
    comps = [one(run, job) for run, job in todo if run.kind == "component"]
    if smoke:  # everything at once: < 20 s
        return list(await asyncio.gather(*bare, *comps))
    # Full: the bare runs and component+uto (mostly idle once stalled) at once, then
    # one component run at a time: its healthy client's rate is the one to compare.
    results = list(await asyncio.gather(*bare))
    for comp in comps:
        results.append(await comp)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="short runs, all at once (< 20 s)")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, default=list(SERVERS))
    parser.add_argument("--loop", choices=("auto", "asyncio"), default="auto", help="uvicorn's")
    parser.add_argument("--runs", nargs="+", help="only these runs (bare/close, component, ...)")
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        serve_main(json.loads(args.serve))
        return 0
    started = now()
    measured = describe_measured()
    results = asyncio.run(drive(args.smoke, args.servers, args.loop, args.runs))
    print(report(results))
    print(
        f"\n({'smoke' if args.smoke else 'full'} run, {now() - started:.1f} s; {measured}; "
        f"uvicorn loop {args.loop})"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str) + "\n")
    failed = 0
    print("\nChecks (component runs):")
    for r in results:
        for check in r.get("checks", []):
            failed += not check["ok"]
            verdict = "ok  " if check["ok"] else "FAIL"
            print(f"  {verdict} {r['server']} {r['run']}: {check['check']}: {check['got']}")
    errors = [r for r in results if "error" in r]
    missing = [
        r for r in results if str(r.get("run")).startswith("component") and "checks" not in r
    ]
    if failed or errors or missing:
        print(f"{failed} check(s) failed, {len(errors)} run(s) raised", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
