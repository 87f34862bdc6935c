"""The servers under test for bench/fanout.py, one kind per process, and their handle.

    python bench/servers.py --kind adminstats --port 8765 [--control-port 8766]
        [--ws websockets|websockets-sansio|wsproto] [--no-deflate] [--snapshot FILE]
        [--setting NAME=VALUE ...] [--audit-trigger]

Kinds (all serve ``ws://127.0.0.1:<port>/admin/ws``):

- ``adminstats``: AdminStats on a Starlette host; a publish goes through the real path
  (the memory bus -> the instance's one subscription -> ``hub.publish_stats``).
- ``seed``: the seed document's design: per publish, the stats (the same ``data`` that
  adminstats gets) made into one ``stats_update`` message (its ``JSON.stringify``), then a
  set of sockets, ``await send`` to each in turn.
- ``chat``: broadcaster's chat example: a subscription (queue + task) per socket.
- ``bare``: accept and wait; the server's own idle memory per connection.
- ``welcome``: ``bare`` that first sends what a dashboard gets on connecting (a
  ``connected`` message and the snapshot): the baseline for the component's idle memory
  with the same traffic (a frame sent through permessage-deflate makes the server's
  compressor touch its buffers, which ``bare`` never does).
- ``ceiling``: the ``websockets`` library's own server and ``broadcast()``.

uvicorn runs with its defaults (uvloop, ``ws="auto"``, permessage-deflate on) and the
process is pinned to CPU 0. A plain TCP control port takes one command per line (one
connection or several; each answers in order): ``info`` (JSON: pid, loop, ws),
``count`` (clients registered for a publish), ``fanned K`` (adminstats: the stats
fan-outs this process completed, answered once there are K), ``publish`` (fan one
snapshot out; answers ``ok``), ``record`` (adminstats only: ``record_action`` of one
audit action, pushed to every ``notifications`` subscriber; answers ``ok``). A failed
command answers ``error ...``. ``bench/server_process.py`` starts a server as a
subprocess and speaks that protocol.

adminstats takes ``--setting NAME=VALUE`` over the bench's settings (e.g.
``broadcast_url=redis://...``, ``database_url=postgresql://...`` (its default schema is
created there), ``heartbeat_interval=10``), and ``--audit-trigger`` installs the
PostgreSQL audit trigger at start-up.

``--workers K`` (adminstats, K > 1) runs it under uvicorn's own multi-process mode: K
full AdminStats instances sharing the listening socket (give them a shared bus, e.g.
``--setting broadcast_url=redis://127.0.0.1:6379/13``), each with its own control port
written to ``<workdir>/control-<pid>.port`` (bench/workers.py; the harness side is
bench/server_workers.py). ``--cpu -1``: not pinned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import json
import os
import random
import resource
import signal
import string
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gc_probe

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("adminstats", "seed", "chat", "bare", "welcome", "ceiling")
WS_CHOICES = ("auto", "websockets", "websockets-sansio", "wsproto")  # ceiling: ignored
LOOP_CHOICES = ("uvloop", "asyncio")
PATH = "/admin/ws"
SECRET = "bench-secret-" + "s" * 32  # HS256 needs >= 32 bytes
SNAPSHOT_BYTES = 1500
_PR_SET_PDEATHSIG = 1  # linux/prctl.h
_SEQ = "@@SEQ@@"  # placeholder replaced by the publish number, so each text differs


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def die_with_parent() -> None:
    """SIGTERM when the harness dies, however it dies: no orphaned server ever."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() == 1:  # the parent was gone before prctl took effect
        sys.exit("the harness is gone")


def pin(cpu: int) -> bool:
    # One core each for server and load generator: neither steals the other's CPU.
    # Not limited to the CPUs this process may use now: a server inherits the harness's
    # own pinning (CPU 1), and checking against that kept every server on CPU 1 too.
    if (os.cpu_count() or 1) < 2 or not 0 <= cpu < (os.cpu_count() or 1):
        return False
    try:
        os.sched_setaffinity(0, {cpu})
    except OSError:  # not a CPU this container may use
        return False
    return True


# --- the snapshot ------------------------------------------------------------------


async def real_snapshot(workdir: Path) -> str:
    """A real ``stats_update`` from AdminStats (5 audit actions), padded to ~1.5 KB."""
    from sqlalchemy.ext.asyncio import create_async_engine

    from asgi_adminstats import AdminStats, Settings, create_default_schema
    from asgi_adminstats.db import async_url

    url = f"sqlite:///{workdir / 'snapshot.db'}"
    engine = create_async_engine(async_url(url))  # the host's engine, shared with AdminStats
    await create_default_schema(engine)
    settings = Settings(jwt_secret=SECRET, database_url=url, instance_name="bench")
    stats = AdminStats(settings, database=engine)
    await stats.startup()
    try:
        for i in range(5):
            await stats.record_action("BAN_PLAYER", "bench-admin", "PLAYER", i)
        await stats.tick()
        for _ in range(200):  # the bus delivers on another task: bounded wait
            latest = stats.hub.latest_stats
            if latest is not None and "bench-admin" in latest:
                break
            await asyncio.sleep(0.01)
        else:
            raise RuntimeError("no snapshot with the audit actions arrived")
    finally:
        await stats.shutdown()
        await engine.dispose()
    message = json.loads(latest)
    message["data"]["benchSeq"] = _SEQ
    message["data"]["filler"] = ""
    size = len(json.dumps(message, separators=(",", ":")))
    # Letters and digits compress about as poorly as real figures do (never all "x").
    filler = random.Random(5).choices(string.ascii_letters + string.digits, k=SNAPSHOT_BYTES - size)
    message["data"]["filler"] = "".join(filler)
    return json.dumps(message, separators=(",", ":"))


class Texts:
    """Numbered copies of the snapshot template; building one is two concatenations."""

    def __init__(self, template: str) -> None:
        self._head, _, self._tail = template.partition(f'"{_SEQ}"')
        self.seq = 0
        self.records = 0  # audit actions recorded (their target ids)

    def next(self) -> str:
        self.seq += 1
        return f"{self._head}{self.seq}{self._tail}"


# --- server side: the control channel and the kinds ---------------------------------


@dataclass
class Hooks:
    count: Callable[[], int]
    publish: Callable[[str], Awaitable[None]]
    record: Callable[[int], Awaitable[None]] | None = None  # one audit action
    fanned: Callable[[int], Awaitable[int]] | None = None  # Fanouts.reach (adminstats)


class Fanouts:
    """Completed stats fan-outs of one AdminStats, counted as they complete: its
    ``adminstats_fanout_seconds{channel="stats"}`` child, whose ``observe`` the hub calls
    at the end of each fan-out (after writing to every idle client), wrapped. Reading the
    histogram instead costs ~80 µs a look, and polling it skews what it measures."""

    def __init__(self, child: Any) -> None:
        self.count = 0
        self._changed = asyncio.Event()
        observe = child.observe

        def counted(amount: float, *args: Any, **kwargs: Any) -> None:
            observe(amount, *args, **kwargs)
            self.count += 1
            self._changed.set()

        child.observe = counted

    async def reach(self, target: int) -> int:
        """``fanned K``: the count once it is >= K (a publish's server side)."""
        async with asyncio.timeout(60):
            while self.count < target:
                self._changed.clear()
                await self._changed.wait()
        return self.count


async def _answer(command: str, hooks: Hooks, texts: Texts, info: dict[str, Any]) -> str:
    if command == "publish":
        await hooks.publish(texts.next())
        return "ok"
    if command == "record" and hooks.record is not None:
        texts.records += 1
        await hooks.record(texts.records)
        return "ok"
    if command == "count":
        return str(hooks.count())
    if command.startswith("fanned ") and hooks.fanned is not None:
        return str(await hooks.fanned(int(command.partition(" ")[2])))
    if command == "info":
        return json.dumps({**info, "loop": type(asyncio.get_running_loop()).__module__})
    if command == "gc":
        return gc_probe.answer()
    if command == "gc-collect":
        return gc_probe.collect()
    if command == "gc-freeze":
        return str(gc_probe.freeze())
    return f"error unknown command {command[:20]!r}"


@contextlib.asynccontextmanager
async def control(
    port: int,
    hooks: Hooks,
    texts: Texts,
    info: dict[str, Any],
    port_file: Path | None = None,
) -> AsyncIterator[None]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            try:
                reply = await _answer(line.decode().strip(), hooks, texts, info)
            except Exception as exc:  # answered, not fatal: the harness reports it
                reply = f"error {type(exc).__name__}: {exc}"[:300].replace("\n", " ")
            writer.write(reply.encode() + b"\n")
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port)
    if port_file is not None:  # a --workers worker: port 0, told to the harness this way
        bound = server.sockets[0].getsockname()[1]
        staging = port_file.with_suffix(".tmp")
        staging.write_text(f"{bound}\n")
        staging.rename(port_file)  # atomic: never read half-written
    try:
        yield
    finally:
        server.close()


def starlette_kind(kind: str, args: argparse.Namespace, texts: Texts) -> Any:
    """The Starlette app of ``kind`` with the control channel in its lifespan."""
    from starlette.applications import Starlette
    from starlette.routing import Mount, WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

    info = {"pid": os.getpid(), "kind": kind, "ws": _uvicorn_ws(args.ws)}
    info["server_deflate"] = not args.no_deflate
    info["cpus"] = sorted(os.sched_getaffinity(0))  # the pinning it actually got
    info["workers"] = getattr(args, "workers", 1)
    routes: list[Any] = []
    inner: Callable[[Any], contextlib.AbstractAsyncContextManager[None]] | None = None
    clients: set[WebSocket] = set()

    async def idle(websocket: WebSocket) -> None:
        with contextlib.suppress(WebSocketDisconnect):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass

    if kind == "adminstats":
        from asgi_adminstats import AdminStats

        stats = AdminStats(adminstats_settings(args))

        @contextlib.asynccontextmanager
        async def started(app: Any) -> AsyncIterator[None]:
            async with stats.lifespan(app):
                if args.audit_trigger:
                    await stats.install_audit_trigger()
                yield

        async def record(seq: int) -> None:
            await stats.record_action("ban", "bench", "player", seq)

        routes.append(Mount(PATH, app=stats))
        inner = started

        async def publish(text: str) -> None:
            # The public way in: on the bus as the producer's snapshot would go.
            await stats.publish_snapshot(json.loads(text)["data"])

        fanouts = Fanouts(stats.metrics.fanout_seconds.labels("stats"))
        hooks = Hooks(lambda: stats.connections, publish, record, fanouts.reach)
    elif kind == "seed":

        async def seed(websocket: WebSocket) -> None:
            await websocket.accept()
            clients.add(websocket)
            try:
                connected = {"type": "connected", "message": "Connected to admin WebSocket server"}
                await websocket.send_text(json.dumps(connected))
                await idle(websocket)
            finally:
                clients.discard(websocket)

        async def seed_publish(text: str) -> None:
            # The seed's startStatsBroadcasting: the tick's stats (parsed here as the
            # adminstats kind parses them: the same work in both) made into one message,
            # then one send after another, OPEN ones only (one that left meanwhile is
            # skipped, as a browser-side ws.send would be).
            stats = json.loads(text)["data"]
            now = datetime.now(UTC).isoformat(timespec="milliseconds")
            message = {"type": "stats_update", "data": stats, "timestamp": now}
            text = json.dumps(message, separators=(",", ":"))
            for client in list(clients):
                if client.application_state == WebSocketState.CONNECTED:
                    with contextlib.suppress(WebSocketDisconnect, OSError):
                        await client.send_text(text)

        routes.append(WebSocketRoute(PATH, seed))
        hooks = Hooks(lambda: len(clients), seed_publish)
    elif kind == "chat":
        from broadcaster import Broadcast

        broadcast = Broadcast("memory://")
        # The senders subscribed, counted here: broadcaster keeps its own count private.
        listening: set[WebSocket] = set()

        async def chat(websocket: WebSocket) -> None:
            # broadcaster's example: a receiver and a sender task per socket, the sender
            # on its own subscription (its own unbounded queue).
            await websocket.accept()

            async def sender() -> None:
                async with broadcast.subscribe("stats") as subscriber:
                    listening.add(websocket)
                    try:
                        async for event in subscriber:  # type: ignore[union-attr]
                            await websocket.send_text(event.message)  # type: ignore[union-attr]
                    finally:
                        listening.discard(websocket)

            tasks = [asyncio.create_task(idle(websocket)), asyncio.create_task(sender())]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

        @contextlib.asynccontextmanager
        async def connected(app: Any) -> AsyncIterator[None]:
            async with broadcast:
                yield

        routes.append(WebSocketRoute(PATH, chat))
        inner = connected
        hooks = Hooks(
            lambda: len(listening),
            lambda text: broadcast.publish("stats", text),
        )
    else:
        welcome = kind == "welcome"
        connected_text = json.dumps(
            {"type": "connected", "message": "Connected to admin WebSocket server"}
        )

        async def bare(websocket: WebSocket) -> None:
            await websocket.accept()
            if welcome:
                await websocket.send_text(connected_text)
                await websocket.send_text(texts.next())
            clients.add(websocket)
            try:
                await idle(websocket)
            finally:
                clients.discard(websocket)

        async def no_publish(text: str) -> None:
            raise RuntimeError(f"the {kind} kind does not publish")

        routes.append(WebSocketRoute(PATH, bare))
        hooks = Hooks(lambda: len(clients), no_publish)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if inner is not None:
                await stack.enter_async_context(inner(app))
            port_file = getattr(args, "control_file", None)
            await stack.enter_async_context(
                control(args.control_port, hooks, texts, info, port_file)
            )
            yield

    return Starlette(routes=routes, lifespan=lifespan)


def adminstats_settings(args: argparse.Namespace) -> Any:
    from asgi_adminstats import Settings

    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "database_url": f"sqlite:///{args.workdir / 'stats.db'}",
        "broadcast_url": "memory://",
        "instance_name": "bench",
        # Limits out of the way: the benchmark opens thousands from one address.
        "max_connections": 20000,
        "max_connections_per_subject": 20000,
        "connect_rate": 100000,
        "connect_burst": 100000,
        # No periodic tick or ping during a measurement: publishes are ours.
        "stats_interval": 3600,
        "heartbeat_interval": 3600,
    }
    types = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
    for item in args.setting:
        name, _, raw = item.partition("=")
        if name not in types:
            raise SystemExit(f"--setting {name}: no such setting")
        kind = types[name]
        values[name] = (
            int(raw)
            if kind == "int"
            else float(raw)
            if kind == "float"
            else raw.lower() in ("1", "true", "yes")
            if kind == "bool"
            else raw
        )
    return Settings(**values)


def _uvicorn_ws(option: str) -> str:
    """The implementation uvicorn's ``ws`` option stands for (``auto`` names one)."""
    if option != "auto":
        return option
    from uvicorn.protocols.websockets.auto import AutoWebSocketsProtocol

    name = getattr(AutoWebSocketsProtocol, "__name__", "none")
    return {"WebSocketsSansIOProtocol": "websockets-sansio", "WSProtocol": "wsproto"}.get(
        name, name
    ) + " (auto)"


async def ceiling(args: argparse.Namespace, texts: Texts) -> None:
    """The websockets library's own server and ``broadcast()``: the practical ceiling."""
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    async def handler(websocket: ServerConnection) -> None:
        await websocket.wait_closed()

    compression = None if args.no_deflate else "deflate"
    # uvicorn's default backlog (asyncio's 100 drops SYNs under a burst of connects).
    async with serve(
        handler, "127.0.0.1", args.port, compression=compression, backlog=2048
    ) as server:

        async def publish(text: str) -> None:
            broadcast(server.connections, text)

        info = {"pid": os.getpid(), "kind": "ceiling", "ws": "websockets.asyncio.server"}
        info["server_deflate"] = compression is not None
        info["cpus"] = sorted(os.sched_getaffinity(0))
        async with control(
            args.control_port, Hooks(lambda: len(server.connections), publish), texts, info
        ):
            await asyncio.Future()  # until the harness terminates us


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kind", choices=KINDS, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int)
    parser.add_argument("--ws", choices=WS_CHOICES, default="auto", help="uvicorn's ws option")
    parser.add_argument("--no-deflate", action="store_true", help="ws_per_message_deflate=False")
    parser.add_argument("--loop", choices=LOOP_CHOICES, default="uvloop", help="the event loop")
    parser.add_argument("--snapshot", type=Path, help="the snapshot text (default: made here)")
    parser.add_argument("--workdir", type=Path, help="for the SQLite file (default: a temp dir)")
    parser.add_argument("--cpu", type=int, default=0, help="pinned to it (-1: not pinned)")
    parser.add_argument(
        "--workers", type=int, default=1, help="adminstats: uvicorn worker processes (see below)"
    )
    parser.add_argument(
        "--reuse-port",
        action="store_true",
        help="--workers: asgi_adminstats.server.run's processes, a SO_REUSEPORT socket each",
    )
    parser.add_argument(
        "--setting", action="append", default=[], help="adminstats: NAME=VALUE (repeatable)"
    )
    parser.add_argument(
        "--audit-trigger", action="store_true", help="adminstats: install the audit trigger"
    )
    args = parser.parse_args()
    args.control_port = args.control_port or args.port + 1
    if args.workdir is not None:  # started by ServerProcess
        die_with_parent()
    raise_fd_limit()
    pin(args.cpu)
    gc_probe.install()
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            args.workdir = Path(stack.enter_context(tempfile.TemporaryDirectory()))
        if args.snapshot is not None:
            template = args.snapshot.read_text()
        else:
            template = asyncio.run(real_snapshot(args.workdir))
        texts = Texts(template)
        if args.kind == "ceiling":
            if args.loop == "asyncio":
                asyncio.run(ceiling(args, texts))
                return
            import uvloop

            uvloop.run(ceiling(args, texts))  # the same loop as uvicorn's default, for fairness
            return
        import uvicorn

        if args.kind == "adminstats":
            asyncio.run(_prepare_database(adminstats_settings(args).database_url))
        options: dict[str, Any] = {"loop": args.loop}
        if args.ws != "auto":
            options["ws"] = args.ws
        if args.no_deflate:
            options["ws_per_message_deflate"] = False
        if args.workers > 1:  # uvicorn's own processes, each a full instance (bench/workers.py)
            from workers import run_workers

            run_workers(args, options, template)
            return
        app = starlette_kind(args.kind, args, texts)
        uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", **options)


async def _prepare_database(url: str) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine

    from asgi_adminstats import create_default_schema
    from asgi_adminstats.db import async_url

    engine = create_async_engine(async_url(url))
    try:
        await create_default_schema(engine)
    finally:
        await engine.dispose()


if __name__ == "__main__":
    main()
