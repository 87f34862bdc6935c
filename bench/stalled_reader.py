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
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import itertools
import json
import logging
import os
import random
import signal
import socket
import string
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SELF = Path(__file__).resolve()
ROOT = SELF.parent.parent
SERVERS = ("uvicorn-websockets", "uvicorn-sansio", "uvicorn-wsproto", "hypercorn")
UVICORN_WS = {
    "uvicorn-websockets": "websockets",
    "uvicorn-sansio": "websockets-sansio",
    "uvicorn-wsproto": "wsproto",
}
ORIGIN = "http://dashboard.example.com"  # tests/conftest.py ORIGIN
SLOW_SEND = 0.05  # a send longer than this "blocked"
_TCP_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}


def now() -> float:
    return time.monotonic()  # CLOCK_MONOTONIC: one clock for the driver and the servers


# =====================================================================================
# Server side (the subprocess): `stalled_reader.py --serve '<json spec>'`
# =====================================================================================


def emit(ev: str, **fields: Any) -> None:
    print(json.dumps({"ev": ev, "t": now(), **fields}, default=str), flush=True)


@dataclass
class Probe:
    """What the bare endpoint did; sampled each second."""

    sent: int = 0
    sent_bytes: int = 0
    max_send: float = 0.0
    slow_sends: int = 0
    pending_since: float | None = None
    active: int = 0
    published: int = 0


PROBE = Probe()
_uvicorn_server: Any = None


def _transports() -> list[tuple[int, bool]]:
    """(user-space write buffer bytes, closing) of each open connection transport."""
    found: list[tuple[int, bool]] = []
    if _uvicorn_server is not None:
        for proto in list(_uvicorn_server.server_state.connections):
            transport = getattr(proto, "transport", None)
            if transport is not None:
                found.append((transport.get_write_buffer_size(), transport.is_closing()))
        return found
    from hypercorn.asyncio.tcp_server import TCPServer

    for obj in gc.get_objects():
        if isinstance(obj, TCPServer):
            transport = obj.writer.transport
            found.append((transport.get_write_buffer_size(), transport.is_closing()))
    return found


async def _sample_forever(spec: dict[str, Any], extra: Callable[[], dict[str, Any]]) -> None:
    import psutil

    process = psutil.Process()
    for _ in range(int(spec["life"] / spec["sample_every"]) + 1):
        transports = _transports()
        pending = PROBE.pending_since
        emit(
            "sample",
            rss=process.memory_info().rss,
            sent=PROBE.sent,
            sent_bytes=PROBE.sent_bytes,
            max_send=PROBE.max_send,
            slow_sends=PROBE.slow_sends,
            pending=None if pending is None else now() - pending,
            active=PROBE.active,
            wbuf=[size for size, _ in transports],
            closing=[closing for _, closing in transports],
            **extra(),
        )
        await asyncio.sleep(spec["sample_every"])


def _message(size: int) -> str:
    rng = random.Random(7)  # printable, incompressible enough, the same every run
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(size))


def bare_app(spec: dict[str, Any], stop: Callable[[], None]) -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket

    text = _message(spec["msg_size"])

    async def watch_disconnect(ws: WebSocket) -> None:
        for _ in range(100):  # the client sends nothing: one receive, until disconnect
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                emit("disconnect", code=message.get("code"))
                return

    async def send_phase(ws: WebSocket) -> str:
        hold = spec["mode"] == "hold"
        deadline = now() + (spec["hold_limit"] if hold else spec["send_seconds"])
        for _ in range(spec["max_messages"]):
            if now() >= deadline:
                return "time limit"
            started = PROBE.pending_since = now()
            limit = deadline - started if hold else spec["block_limit"]
            try:
                await asyncio.wait_for(ws.send_text(text), limit)
            except TimeoutError:
                return "still blocked at hold limit" if hold else "blocked"
            except Exception as exc:
                emit("send_error", error=type(exc).__name__, pending=now() - started)
                return f"send raised {type(exc).__name__}"
            finally:
                PROBE.pending_since = None
            took = now() - started
            PROBE.sent += 1
            PROBE.sent_bytes += len(text)
            PROBE.max_send = max(PROBE.max_send, took)
            if took > SLOW_SEND:
                PROBE.slow_sends += 1
                if PROBE.slow_sends == 1:
                    emit("first_slow", n=PROBE.sent, took=took, sent_bytes=PROBE.sent_bytes)
        return "message limit"

    async def endpoint(ws: WebSocket) -> None:
        PROBE.active += 1
        try:
            await ws.accept()
            emit("accepted")
            watcher = asyncio.create_task(watch_disconnect(ws))
            try:
                reason = await send_phase(ws)
                emit(
                    "send_end",
                    reason=reason,
                    sent=PROBE.sent,
                    sent_bytes=PROBE.sent_bytes,
                    max_send=PROBE.max_send,
                    slow_sends=PROBE.slow_sends,
                )
                if spec["mode"] == "close":
                    emit("close_start")
                    started = now()
                    try:
                        await asyncio.wait_for(ws.close(1000), spec["close_limit"])
                        outcome = "returned"
                    except TimeoutError:
                        outcome = "timed out"
                    except Exception as exc:
                        outcome = f"raised {type(exc).__name__}"
                    emit("close_end", outcome=outcome, took=now() - started)
            finally:
                watcher.cancel()
                with contextlib.suppress(BaseException):
                    await watcher
        finally:
            PROBE.active -= 1
            emit("app_return")

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        sampler = asyncio.create_task(_sample_forever(spec, dict))
        timer = asyncio.get_running_loop().call_later(spec["life"], stop)
        emit("ready", port=spec["port"])
        try:
            yield
        finally:
            timer.cancel()
            sampler.cancel()

    return Starlette(routes=[WebSocketRoute("/ws", endpoint)], lifespan=lifespan)


def component_app(spec: dict[str, Any], stop: Callable[[], None]) -> Any:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from asgi_adminstats import AdminStats, protocol

    from conftest import make_settings, prepare_database

    settings = make_settings(
        Path(spec["db_dir"]),
        heartbeat_interval=spec["heartbeat_interval"],
        heartbeat_timeout=spec["heartbeat_timeout"],
        notification_queue=spec["notification_queue"],
        stats_interval=60.0,  # the producer's own ticks stay out of the way
        instance_name=f"bench-{spec['server']}",
    )
    asyncio.run(prepare_database(settings.database_url))
    stats = AdminStats(settings)
    pad = _message(spec["msg_size"] - 130)

    class ToStdout(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            emit("log", logger=record.name, msg=record.getMessage())

    for name in ("asgi_adminstats.connections", "asgi_adminstats.session"):
        log = logging.getLogger(name)
        log.setLevel(logging.INFO)
        log.addHandler(ToStdout())
        log.propagate = False

    # A diagnostic wrapped around the package, not a change to it: report each outbox's
    # first close request (the one that wins) with its session's subject, when it is made.
    from asgi_adminstats.outbox import Close, Outbox

    request_close = Outbox.close

    def close_and_report(box: Outbox, close: Close) -> None:
        if getattr(box, "_close", None) is None:
            members = list(getattr(stats.hub, "_members", ()))
            sub = next((str(m.sub) for m in members if m.outbox is box), "?")
            emit("close_requested", sub=sub, code=close.code)
        request_close(box, close)

    setattr(Outbox, "close", close_and_report)  # noqa: B010 (a patch, not an attribute)

    async def publish() -> None:
        every = spec["publish_every"]
        started = now()
        for i in range(int(spec["publish_seconds"] / every)):
            if now() - started >= spec["publish_seconds"]:
                break
            snapshot = protocol.server_message("stats", data={"seq": i, "pad": pad})
            stats.hub.publish_stats(protocol.encode(snapshot))
            action = protocol.server_message("audit_action", data={"id": str(i), "pad": pad})
            stats.hub.publish_notification(protocol.encode(action))
            PROBE.published += 1
            await asyncio.sleep(every)
        emit("publish_end", published=PROBE.published, took=now() - started)

    def extra() -> dict[str, Any]:
        outboxes = {}  # a diagnostic only: private fields, read defensively
        for member in list(getattr(stats.hub, "_members", ())):
            box = member.outbox
            requested = getattr(box, "_close", None)
            outboxes[str(member.sub)] = {
                "notifications": len(getattr(box, "_notifications", None) or ()),
                "close_requested": None if requested is None else requested.code,
            }
        return {
            "members": len(stats.hub),
            "sockets": stats.hub.sockets,
            "published": PROBE.published,
            "outboxes": outboxes,
        }

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        async with stats.lifespan(app):
            sampler = asyncio.create_task(_sample_forever(spec, extra))
            publisher = asyncio.create_task(publish())
            timer = asyncio.get_running_loop().call_later(spec["life"], stop)
            emit("ready", port=spec["port"])
            try:
                yield
            finally:
                timer.cancel()
                publisher.cancel()
                sampler.cancel()

    return Starlette(routes=[Mount("/admin/ws", app=stats)], lifespan=lifespan)


def serve_main(spec: dict[str, Any]) -> None:
    global _uvicorn_server
    # A last resort: whatever happens, this process ends.
    watchdog = threading.Timer(spec["life"] + 15, os._exit, (3,))
    watchdog.daemon = True
    watchdog.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if spec.get("sndbuf"):  # accepted sockets inherit it from the listener
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, spec["sndbuf"])
    if spec["user_timeout_ms"]:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, spec["user_timeout_ms"])
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    spec["port"] = sock.getsockname()[1]
    make = component_app if spec["app"] == "component" else bare_app
    if spec["server"] in UVICORN_WS:
        import uvicorn

        def stop_uvicorn() -> None:
            _uvicorn_server.should_exit = True

        pings: dict[str, Any] = {}
        if spec["pings"] is not None:
            pings = {"ws_ping_interval": spec["pings"][0], "ws_ping_timeout": spec["pings"][1]}
        config = uvicorn.Config(
            make(spec, stop_uvicorn),
            ws=UVICORN_WS[spec["server"]],
            loop=spec["loop"],
            log_level="error",
            lifespan="on",
            timeout_graceful_shutdown=1,
            **pings,
        )
        _uvicorn_server = uvicorn.Server(config)
        _uvicorn_server.run(sockets=[sock])
        return
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    done = asyncio.Event()  # bound to a loop at first use, not here
    app = make(spec, done.set)  # outside the loop: the component prepares its database

    async def run_hypercorn() -> None:
        config = Config()
        config.bind = [f"fd://{sock.fileno()}"]
        config.loglevel = "ERROR"
        config.accesslog = None
        config.graceful_timeout = 1
        if spec["pings"] is not None:
            config.websocket_ping_interval = spec["pings"][0]
        await serve(app, config, shutdown_trigger=done.wait)

    asyncio.run(run_hypercorn())


# =====================================================================================
# Driver side
# =====================================================================================


def _hostile() -> Any:
    """The tests' hand-written client helpers (handshake request, frame parser)."""
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
    import hostile

    return hostile


def _handshake(port: int, path: str, headers: dict[str, str]) -> bytes:
    handshake: bytes = _hostile().handshake_request(f"127.0.0.1:{port}", headers, path)
    return handshake


def masked_frame(opcode: int, payload: bytes) -> bytes:
    assert len(payload) < 126
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + body


class StalledClient:
    """A raw socket: small receive buffer, upgrade by hand, then no more reads."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.port: int = sock.getsockname()[1]
        self.head = b""

    @classmethod
    async def connect(cls, port: int, path: str, headers: dict[str, str]) -> StalledClient:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
            await asyncio.wait_for(loop.sock_sendall(sock, _handshake(port, path, headers)), 5)
            client = cls(sock)
            async with asyncio.timeout(5):
                while b"\r\n\r\n" not in client.head and len(client.head) < 8192:
                    chunk = await loop.sock_recv(sock, 1)  # the head only, not one byte more
                    if not chunk:
                        raise ConnectionError(f"EOF in the handshake: {client.head!r}")
                    client.head += chunk
        except BaseException:
            sock.close()
            raise
        if not client.head.startswith(b"HTTP/1.1 101"):
            sock.close()
            raise ConnectionError(f"handshake refused: {client.head[:80]!r}")
        return client

    async def send_text(self, text: str) -> None:
        frame = masked_frame(0x1, text.encode())
        await asyncio.wait_for(asyncio.get_running_loop().sock_sendall(self.sock, frame), 5)

    async def drain(self, limit: float, max_bytes: int = 64 << 20) -> tuple[bytes, bool]:
        """Read what the server wrote: until EOF, 1 s of quiet, ``limit`` s or max_bytes."""
        loop = asyncio.get_running_loop()
        data = bytearray()
        deadline = loop.time() + limit
        while len(data) < max_bytes and loop.time() < deadline:
            try:
                chunk = await asyncio.wait_for(
                    loop.sock_recv(self.sock, 1 << 16), min(1.0, deadline - loop.time())
                )
            except TimeoutError:
                return bytes(data), False
            except ConnectionError:
                return bytes(data), True
            if not chunk:
                return bytes(data), True
            data += chunk
        return bytes(data), False

    def close(self) -> None:
        self.sock.close()


def last_frames(data: bytes) -> tuple[int, int, int | None, str]:
    """(frames, pings, close code or None, close reason) of server frames (unmasked)."""
    frames: list[tuple[int, bytes]] = _hostile().parse_frames(data)
    code: int | None = None
    reason = ""
    for opcode, payload in frames:
        if opcode == 0x8 and len(payload) >= 2:
            (code,) = struct.unpack("!H", payload[:2])
            reason = payload[2:].decode(errors="replace")
    return len(frames), sum(opcode == 0x9 for opcode, _ in frames), code, reason


def read_proc_tcp() -> list[tuple[int, int, str, int, int]]:
    """(local port, remote port, state, tx_queue, rx_queue) of every IPv4 TCP socket."""
    rows = []
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            parts = line.split()
            local, remote, state, queues = parts[1], parts[2], parts[3], parts[4]
            tx, rx = queues.split(":")
            rows.append(
                (
                    int(local.split(":")[1], 16),
                    int(remote.split(":")[1], 16),
                    _TCP_STATES.get(state, state),
                    int(tx, 16),
                    int(rx, 16),
                )
            )
    return rows


@dataclass
class Run:
    kind: str  # bare/close, bare/hold+ping1, component, ...
    server: str
    spec: dict[str, Any]
    events: list[dict[str, Any]] = field(default_factory=list)
    tcp: list[dict[str, Any]] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    port: int = 0
    watched: dict[str, int] = field(default_factory=dict)  # client name -> client port
    _flags: dict[str, asyncio.Event] = field(default_factory=dict)

    def flag(self, ev: str) -> asyncio.Event:
        return self._flags.setdefault(ev, asyncio.Event())

    def first(self, ev: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e["ev"] == ev), None)

    def samples(self) -> list[dict[str, Any]]:
        return [e for e in self.events if e["ev"] == "sample"]


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


async def _watch_tcp(every: float) -> None:
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


# --- bare runs ------------------------------------------------------------------------


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


def _mib(n: float) -> float:
    return round(n / 2**20, 2)


def _gone_at(run: Run, name: str, after: float, until: float) -> float | None:
    """When the server-side socket of ``name`` left /proc/net/tcp (s after ``after``),
    if it did before ``until``."""
    seen = False
    for snap in run.tcp:
        if snap["t"] > until:
            break
        entry = snap.get(name)
        if entry is None:
            continue
        if entry["server"] is not None:
            seen = True
        elif seen and snap["t"] >= after:
            return round(float(snap["t"]) - after, 2)
    return None


def _tcp_at(run: Run, name: str, moment: float) -> dict[str, Any] | None:
    best: dict[str, Any] | None = None
    for snap in run.tcp:
        if snap["t"] <= moment and name in snap:
            best = snap[name]
    return best


def summarise_bare(run: Run) -> None:
    res = run.result
    samples = run.samples()
    accepted = run.first("accepted")
    send_end = run.first("send_end")
    close_end = run.first("close_end")
    disconnect = run.first("disconnect")
    app_return = run.first("app_return")
    first_slow = run.first("first_slow")
    send_error = run.first("send_error")
    base = samples[0]["rss"] if samples else 0
    t0 = accepted["t"] if accepted else res.get("connected_at", 0.0)
    before_drain = [s for s in samples if s["t"] <= res["ended_at"]]
    end_send = send_end["t"] if send_end else res["ended_at"]
    plateau = [s for s in samples if s["t"] <= end_send + 1.0] or samples
    last = before_drain[-1] if before_drain else {}
    tcp_block = _tcp_at(run, "stalled", end_send)
    tcp_end = _tcp_at(run, "stalled", res["ended_at"])
    res.update(
        server=run.server,
        run=run.kind,
        pings=run.spec["pings"] or "default",
        sent=send_end["sent"] if send_end else last.get("sent"),
        sent_mib=_mib(send_end["sent_bytes"] if send_end else last.get("sent_bytes", 0)),
        send_end=send_end["reason"] if send_end else "app never finished sending",
        send_end_s=None if not send_end else round(send_end["t"] - t0, 2),
        first_slow_n=first_slow["n"] if first_slow else None,
        max_send_ms=round(1000 * max((s["max_send"] for s in samples), default=0.0), 1),
        blocked=bool(
            (send_end and send_end["reason"] != "message limit")
            or any(s["slow_sends"] for s in samples)
        ),
        send_error=send_error["error"] if send_error else None,
        wbuf_at_block=[s["wbuf"] for s in plateau][-1] if plateau else None,
        kernel_at_block=tcp_block,
        rss_growth_mib=_mib(max((s["rss"] for s in plateau), default=base) - base),
        rss_growth_end_mib=_mib(last.get("rss", base) - base),
        close=None if not close_end else f"{close_end['outcome']} after {close_end['took']:.1f} s",
        disconnect_s=None if not disconnect else round(disconnect["t"] - t0, 2),
        disconnect_code=None if not disconnect else disconnect.get("code"),
        app_return_s=None if not app_return else round(app_return["t"] - t0, 2),
        transport_closing_s=next(
            (round(x["t"] - t0, 1) for x in samples if any(x["closing"])), None
        ),
        server_socket_gone_s=_gone_at(run, "stalled", t0, res["ended_at"]),
        drained=res.get("drained"),
        gone_after_drain_s=None
        if "drained" not in res
        else _gone_at(run, "stalled", res["ended_at"], now() + 1),
        server_socket_at_end=tcp_end,
        transports_at_end=list(zip(last.get("wbuf", []), last.get("closing", []), strict=False)),
        observed_s=round(res["ended_at"] - t0, 1),
        rss_series_mib=[_mib(s["rss"] - base) for s in samples],
    )


# --- component runs -------------------------------------------------------------------


async def healthy_reader(
    port: int, tok: str, seconds: float, stamps: dict[str, list[float]], info: dict[str, Any]
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    async with connect(
        f"ws://127.0.0.1:{port}/admin/ws",
        additional_headers={"Authorization": f"Bearer {tok}"},
        origin=ORIGIN,  # type: ignore[arg-type]
        subprotocols=[Subprotocol("adminstats.v1")],
        open_timeout=5,
        max_size=1 << 20,
    ) as ws:
        deadline = now() + seconds
        for _ in range(10_000_000):
            left = deadline - now()
            if left <= 0:
                break
            try:
                raw = await asyncio.wait_for(ws.recv(), left)
            except TimeoutError:
                break
            except ConnectionClosed:
                info["closed_by_server_at"] = now()
                break
            message = json.loads(raw)
            kind = message["type"]
            stamps.setdefault(kind, []).append(now())
            if kind == "audit_action":
                info.setdefault("ids", []).append(int(message["data"]["id"]))
            if kind == "ping":
                await ws.send(json.dumps({"type": "pong"}))
        info["close_code"] = ws.close_code


async def component_run(run: Run) -> None:
    sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]
    from conftest import token

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
                if now() >= until or all(_closed_line(run, n) for n in clients):
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


# An exception out of the ASGI app as uvicorn and hypercorn log it, one asyncio never
# saw retrieved, or any traceback through the package. Not any traceback: hypercorn's
# own TCPServer._close logs ETIMEDOUT when TCP_USER_TIMEOUT resets a connection.
_CRASH_MARKS = (
    "Exception in ASGI application",
    "Error in ASGI Framework",
    "exception was never retrieved",
    "/asgi_adminstats/",
)
# The session's logger.error lines: "session X failed", "session X: a write failed".
_FAILED_LOGS = " failed"


def close_bound(spec: dict[str, Any]) -> float:
    """By when (s after connect) a stalled session must have ended, generously: the
    heartbeat's ping and pong wait, the bounded close, and 5 s for a loaded machine."""
    return float(spec["heartbeat_interval"] + 2 * spec["heartbeat_timeout"] + 5)


def _closed_line(run: Run, name: str) -> dict[str, Any] | None:
    """The session's "connection closed" log event for client ``name``, if any."""
    return next(
        (
            e
            for e in run.events
            if e["ev"] == "log" and "connection closed" in e["msg"] and f"sub={name} " in e["msg"]
        ),
        None,
    )


def component_checks(run: Run, res: dict[str, Any]) -> list[dict[str, Any]]:
    """Behaviour, not speed: what ``--smoke`` (a CI guard) fails on.

    - each stalled client's session ends with 4008 or 4408 within ``close_bound`` (with
      ``TCP_USER_TIMEOUT`` the kernel's reset may end it first: "client" counts too);
    - the close performed is the first one asked for (a 4008 on overflow is not left
      to the heartbeat's 4408);
    - no exception came out of the app (the server's log; e.g. an AssertionError in a
      close) and the session logged no failure;
    - the healthy client was not closed, got the last notification published and
      missed none in between.
    """
    bound = close_bound(run.spec)
    codes = {"4008", "4408"} | ({"client"} if run.spec["user_timeout_ms"] else set())
    checks: list[dict[str, Any]] = []
    for name in ("stalled-both", "stalled-stats"):
        code, after = res["close_codes"].get(name), res["closed_s"].get(name)
        checks.append(
            {
                "check": f"{name} closed ({'/'.join(sorted(codes))}) within {bound:g} s",
                "ok": code in codes and after is not None and after <= bound,
                "got": "never logged" if code is None else f"{code} at +{after} s",
            }
        )
    for name in ("stalled-both", "stalled-stats"):
        asked, code = res["first_requested"].get(name), res["close_codes"].get(name)
        checks.append(
            {
                "check": f"{name}: the close asked for first is the one performed",
                # No request seen (a hook that no longer fits the package): nothing to check.
                "ok": asked is None or code == asked,
                "got": "no request seen" if asked is None else f"asked {asked}, performed {code}",
            }
        )
    crashes = [line for line in run.stderr if any(mark in line for mark in _CRASH_MARKS)]
    crashes += [
        e["msg"] for e in run.events if e["ev"] == "log" and e["msg"].endswith(_FAILED_LOGS)
    ]
    checks.append(
        {
            "check": "no exception from the app (server log, session log)",
            "ok": not crashes,
            "got": "; ".join(crashes[:3]) or "none",
        }
    )
    last_id = max(res["_ids"]) if res["_ids"] else None
    published, missing = res["published"], res["healthy_notifications_missing"]
    closed = res["healthy_closed_by_server_s"] is not None
    checks.append(
        {
            "check": "healthy kept receiving: not closed, got the last notification, 0 missing",
            "ok": not closed and res["publish_ended"] and last_id == published - 1 and missing == 0,
            "got": f"closed by server: {res['healthy_close_code'] if closed else 'no'}, "
            f"last id {last_id} of {published} published, {missing} missing",
        }
    )
    return checks


def summarise_component(run: Run, stamps: dict[str, list[float]], info: dict[str, Any]) -> None:
    res = run.result
    samples = run.samples()
    base = samples[0]["rss"] if samples else 0
    t0 = res["connected_at"]
    publish_end = run.first("publish_end")
    logs = [e["msg"] for e in run.events if e["ev"] == "log"]
    closes: dict[str, str] = {}
    close_codes: dict[str, str] = {}
    closed_s: dict[str, float] = {}
    for name in ("stalled-both", "stalled-stats", "healthy"):
        event = _closed_line(run, name)
        if event is not None:
            fields = dict(part.split("=", 1) for part in event["msg"].split() if "=" in part)
            closes[name] = f"{fields.get('code')} after {fields.get('duration')}"
            close_codes[name] = str(fields.get("code"))
            closed_s[name] = round(event["t"] - t0, 2)
    stats_times = [t for t in stamps.get("stats", []) if t >= t0]
    end = publish_end["t"] if publish_end else res["ended_at"]
    window = [t for t in stats_times if t <= end]
    per_second: list[int] = []
    if window:
        start = window[0]
        per_second = [
            sum(1 for t in window if start + i <= t < start + i + 1)
            for i in range(int(window[-1] - start))
        ]
    gaps = [b - a for a, b in itertools.pairwise(window)]
    published = publish_end["published"] if publish_end else samples[-1].get("published", 0)
    before_drain = [s for s in samples if s["t"] <= res["ended_at"]]
    last = before_drain[-1] if before_drain else {}
    ids: list[int] = info.get("ids", [])
    requested: dict[str, str] = {}
    first_requested: dict[str, str] = {}
    for event in run.events:
        if event["ev"] == "close_requested" and event["sub"] not in requested:
            requested[event["sub"]] = f"{event['code']} at +{event['t'] - t0:.1f} s"
            first_requested[event["sub"]] = str(event["code"])
    res.update(
        server=run.server,
        run=run.kind,
        close_requested=requested,
        first_requested=first_requested,
        app_errors=[line for line in run.stderr if "Error" in line or "Exception" in line][-6:],
        settings=(
            f"heartbeat {run.spec['heartbeat_interval']}/{run.spec['heartbeat_timeout']} s, "
            f"notification_queue {run.spec['notification_queue']}"
        ),
        published=published,
        publish_rate=round(published / publish_end["took"], 1) if publish_end else None,
        closes=closes,
        close_codes=close_codes,
        closed_s=closed_s,
        publish_ended=publish_end is not None,
        healthy_stats_per_s_mean=round(sum(per_second) / len(per_second), 1)
        if per_second
        else None,
        healthy_stats_per_s_min=min(per_second) if per_second else None,
        healthy_max_gap_ms=round(1000 * max(gaps), 1) if gaps else None,
        healthy_notifications=len(stamps.get("audit_action", [])),
        healthy_notifications_missing=(max(ids) - min(ids) + 1 - len(set(ids))) if ids else None,
        healthy_close_code=info.get("close_code"),
        healthy_closed_by_server_s=round(info["closed_by_server_at"] - t0, 1)
        if "closed_by_server_at" in info
        else None,
        rss_growth_max_mib=_mib(max((s["rss"] for s in samples), default=base) - base),
        rss_growth_end_mib=_mib(last.get("rss", base) - base),
        rss_series_mib=[_mib(s["rss"] - base) for s in samples],
        members_end=last.get("members"),
        sockets_end=last.get("sockets"),
        transports_end=list(zip(last.get("wbuf", []), last.get("closing", []), strict=False)),
        tcp_end={name: _tcp_at(run, name, res["ended_at"]) for name in run.watched},
        gone_s={name: _gone_at(run, name, t0, res["ended_at"]) for name in run.watched},
        log_tail=logs[-8:],
        _ids=ids,
    )
    res["checks"] = component_checks(run, res)
    del res["_ids"]


# --- plans ------------------------------------------------------------------------------


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

        watcher = asyncio.create_task(_watch_tcp(0.25))
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


# --- report -----------------------------------------------------------------------------


def _kernel(entry: dict[str, Any] | None) -> str:
    if not entry:
        return "-"
    server, client = entry.get("server"), entry.get("client")
    tx = f"{server['tx'] / 1024:.0f}K" if server else "gone"
    rx = f"{client['rx'] / 1024:.0f}K" if client else "gone"
    return f"{tx}/{rx}"


def _drained(d: dict[str, Any] | None) -> str:
    if not d:
        return "-"
    return (
        f"{d['bytes'] / 2**20:.2f} MiB, {d['frames']} frames ({d['pings']} pings), close frame "
        f"{d['close_frame'] or 'none'}, {'EOF' if d['eof'] else 'no EOF'}"
    )


def report(results: list[dict[str, Any]]) -> str:
    lines = [
        "| server | run | pings | sent (MiB) | sending ended | max send | user-space "
        "buffer | kernel srv tx/cli rx | RSS growth | close() | transport closing | app saw "
        "disconnect | server socket | client then reads: what it gets |",
        "|" + "---|" * 14,
    ]
    for r in results:
        if str(r.get("run")).startswith("component"):
            continue
        if "error" in r:
            lines.append(f"| {r['server']} | {r['run']} | ERROR {r['error']} |" + " |" * 11)
            continue
        wbuf = r["wbuf_at_block"]
        end = r["server_socket_at_end"]
        gone = (
            f"gone at +{r['server_socket_gone_s']} s"
            if r["server_socket_gone_s"] is not None
            else f"still {end['server']['state'] if end and end['server'] else '?'} "
            f"at +{r['observed_s']} s"
        )
        lines.append(
            f"| {r['server']} | {r['run']} | {r['pings']} | {r['sent']} ({r['sent_mib']}) | "
            f"{r['send_end']} at +{r['send_end_s']} s | {r['max_send_ms']} ms | "
            f"{'/'.join(f'{w / 1024:.0f}K' for w in wbuf) if wbuf else '-'} | "
            f"{_kernel(r['kernel_at_block'])} | {r['rss_growth_mib']} MiB | {r['close'] or '-'} | "
            f"{'-' if r['transport_closing_s'] is None else '+' + str(r['transport_closing_s']) + ' s'} | "  # noqa: E501
            f"{'-' if r['disconnect_s'] is None else str(r['disconnect_code']) + ' at +' + str(r['disconnect_s']) + ' s'} | "  # noqa: E501
            f"{gone} | {_drained(r.get('drained'))} |"
        )
    lines += [
        "",
        "| server | run | close requested in the outbox | stalled (both lanes) closed | "
        "stalled (stats only) closed | drained "
        "from stalled sockets afterwards | healthy stats/s mean (min), max gap | healthy "
        "notifications received / published, missing in between | RSS growth max (end) | "
        "server sockets at end (kernel srv tx / cli rx) |",
        "|" + "---|" * 10,
    ]
    for r in results:
        if not str(r.get("run")).startswith("component"):
            continue
        if "error" in r:
            lines.append(f"| {r['server']} | {r['run']} | ERROR {r['error']} |" + " |" * 7)
            continue
        drained = "; ".join(
            f"{name.removeprefix('stalled-')}: {_drained(r.get(f'{name}_drained'))}"
            for name in ("stalled-both", "stalled-stats")
        )
        sockets = ", ".join(
            f"{name.removeprefix('stalled-')}: "
            + (
                f"gone at +{r['gone_s'][name]} s"
                if r["gone_s"].get(name) is not None
                else _kernel(r["tcp_end"].get(name))
            )
            for name in r["tcp_end"]
        )
        closes = r["closes"]
        lines.append(
            f"| {r['server']} | {r['run']} | "
            f"{', '.join(f'{k}: {v}' for k, v in r['close_requested'].items()) or '-'} | "
            f"{closes.get('stalled-both', 'not closed')} | "
            f"{closes.get('stalled-stats', 'not closed')} | {drained} | "
            + (
                f"CLOSED {r['healthy_close_code']} by the server at "
                f"+{r['healthy_closed_by_server_s']} s; "
                if r["healthy_closed_by_server_s"] is not None
                else ""
            )
            + f"{r['healthy_stats_per_s_mean']} ({r['healthy_stats_per_s_min']}), "
            f"{r['healthy_max_gap_ms']} ms | {r['healthy_notifications']} / {r['published']}, "
            f"{r['healthy_notifications_missing']} missing | "
            f"{r['rss_growth_max_mib']} ({r['rss_growth_end_mib']}) MiB | {sockets} |"
        )
    return "\n".join(lines)


def _measured() -> str:
    """The component's commit (and whether asgi_adminstats/ differs from it), versions."""
    from importlib.metadata import version

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10)
        return done.stdout.strip()

    changed = [
        line.split()[-1] for line in git("status", "--porcelain", "asgi_adminstats").splitlines()
    ]
    dirty = f" + uncommitted changes to {', '.join(changed)}" if changed else ""
    packages = ("uvicorn", "websockets", "wsproto", "hypercorn", "starlette", "uvloop")
    return f"asgi_adminstats at {git('rev-parse', '--short', 'HEAD')}{dirty}; " + ", ".join(
        f"{name} {version(name)}" for name in packages
    )


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
    measured = _measured()
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
