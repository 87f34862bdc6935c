"""Driving the runs: the server subprocess and its output, the one /proc/net/tcp poller,
the bare and component runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

from proc_tcp import read_proc_tcp

from stalled.checks import close_bound, closed_line, summarise_bare, summarise_component
from stalled.client import StalledClient, healthy_reader, last_frames
from stalled.common import ROOT, SELF, Run, now

__all__ = [
    "bare_run",
    "component_run",
    "server_process",
    "watch_tcp",
]


async def _pump_stdout(run: Run, stream: asyncio.StreamReader) -> None:
    for _ in range(10_000_000):
        line = await stream.readline()
        if not line:
            return
        try:
            event = json.loads(line)
        except ValueError:
            run.stderr.append(line.decode(errors="replace").rstrip())
            continue
        run.events.append(event)
        if event["ev"] == "ready":
            run.port = event["port"]
        run.flag(event["ev"]).set()


async def _pump_stderr(run: Run, stream: asyncio.StreamReader) -> None:
    for _ in range(10_000_000):
        line = await stream.readline()
        if not line:
            return
        run.stderr.append(line.decode(errors="replace").rstrip())
        del run.stderr[:-200]


_WATCHED: list[Run] = []  # runs whose sockets the one /proc/net/tcp poller follows


async def watch_tcp(every: float) -> None:
    """One poller for all runs: /proc/net/tcp lists every socket of the machine."""
    for _ in range(1_000_000):
        runs = [run for run in _WATCHED if run.port and run.watched]
        rows = read_proc_tcp() if runs else []
        for run in runs:
            snap: dict[str, Any] = {"t": now()}
            for name, cport in run.watched.items():
                server_side = [r for r in rows if r[0] == run.port and r[1] == cport]
                client_side = [r for r in rows if r[0] == cport and r[1] == run.port]
                snap[name] = {
                    "server": None
                    if not server_side
                    else {"state": server_side[0][2], "tx": server_side[0][3]},
                    "client": None
                    if not client_side
                    else {"state": client_side[0][2], "rx": client_side[0][4]},
                }
            run.tcp.append(snap)
        await asyncio.sleep(every)


@contextlib.asynccontextmanager
async def server_process(run: Run) -> AsyncIterator[None]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SELF),
        "--serve",
        json.dumps(run.spec),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    pumps = [
        asyncio.create_task(_pump_stdout(run, proc.stdout)),
        asyncio.create_task(_pump_stderr(run, proc.stderr)),
    ]
    _WATCHED.append(run)
    try:
        ready = asyncio.create_task(run.flag("ready").wait())
        exited = asyncio.create_task(proc.wait())
        await asyncio.wait([ready, exited], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        exited.cancel()
        if not run.flag("ready").is_set():
            await asyncio.sleep(0.2)  # the last stderr lines
            tail = run.stderr[-1] if run.stderr else "no output"
            raise RuntimeError(f"server not ready (exit {proc.returncode}): {tail}")
        yield
    finally:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGKILL)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 10)
        _WATCHED.remove(run)
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


async def bare_run(run: Run) -> None:
    spec = run.spec
    async with server_process(run):
        client = await StalledClient.connect(run.port, "/ws", {})
        run.watched["stalled"] = client.port
        run.result["connected_at"] = now()
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(run.flag("app_return").wait(), spec["app_limit"])
            await asyncio.sleep(spec["observe"])
            run.result["ended_at"] = now()
            # What did the server leave in the pipe, and does it let go once it drains?
            data, eof = await client.drain(spec["drain_limit"])
            frames, pings, code, reason = last_frames(data)
            run.result["drained"] = {
                "bytes": len(data),
                "frames": frames,
                "pings": pings,
                "close_frame": None if code is None else f"{code} {reason}".strip(),
                "eof": eof,
                "took": round(now() - run.result["ended_at"], 2),
            }
            await asyncio.sleep(0.5)
        finally:
            run.result.setdefault("ended_at", now())
            client.close()
    summarise_bare(run)


async def component_run(run: Run) -> None:
    sys.path.insert(0, str(ROOT))  # for support/
    from support.loopback import token

    spec = run.spec
    stamps: dict[str, list[float]] = {}
    info: dict[str, Any] = {}
    clients: dict[str, StalledClient] = {}
    async with server_process(run):
        window = spec["publish_seconds"] + spec["observe"]
        healthy = asyncio.create_task(
            healthy_reader(run.port, token("healthy"), window, stamps, info)
        )
        try:
            await asyncio.sleep(0.3)  # the healthy client first
            run.result["connected_at"] = now()
            for name in ("stalled-both", "stalled-stats"):
                headers = {
                    "Authorization": f"Bearer {token(name)}",
                    "Sec-WebSocket-Protocol": "adminstats.v1",
                }
                clients[name] = await StalledClient.connect(run.port, "/admin/ws", headers)
                run.watched[name] = clients[name].port
            # Writing is fine for a client that stopped reading: this one leaves the
            # notification lane, so only the heartbeat can find it out.
            await clients["stalled-stats"].send_text(
                json.dumps({"type": "unsubscribe", "subscriptions": ["notifications"]})
            )
            await asyncio.wait_for(healthy, window + 10)
            # Each stalled session must have ended by the bound (see CHECKS); wait for
            # its "connection closed" line until then, no longer.
            until = run.result["connected_at"] + close_bound(spec) + 0.5
            for _ in range(1000):
                if now() >= until or all(closed_line(run, n) for n in clients):
                    break
                await asyncio.sleep(0.1)
            run.result["ended_at"] = now()
            # What did the server leave in the pipe? Read it all (bounded).
            for name, client in clients.items():
                data, eof = await client.drain(spec["drain_limit"])
                frames, pings, code, reason = last_frames(data)
                run.result[f"{name}_drained"] = {
                    "bytes": len(data),
                    "frames": frames,
                    "pings": pings,
                    "close_frame": None if code is None else f"{code} {reason}",
                    "eof": eof,
                }
        finally:
            healthy.cancel()
            with contextlib.suppress(BaseException):
                await healthy
            for client in clients.values():
                client.close()
    summarise_component(run, stamps, info)
