"""Server side (the subprocess): ``stalled_reader.py --serve '<json spec>'``.

A bare Starlette endpoint or AdminStats under uvicorn or hypercorn, on a listening
socket made by ``asgi_adminstats.listening_socket``; it reports JSON lines on stdout
(events, and a sample each second: RSS, the transports' user-space write buffers).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import string
import sys
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stalled.common import ROOT, SLOW_SEND, UVICORN_WS, now

__all__ = [
    "PROBE",
    "Probe",
    "bare_app",
    "component_app",
    "emit",
    "serve_main",
]


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
    sys.path.insert(0, str(ROOT))  # for support/
    from starlette.applications import Starlette
    from starlette.routing import Mount

    from asgi_adminstats import AdminStats, protocol

    from support.demo_db import prepare_database
    from support.loopback import make_settings

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
    from asgi_adminstats.delivery import Close, Outbox

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
            # Type "stats", which checks.py counts, apart from the producer's own
            # "stats_update" snapshots.
            seq = {"seq": i, "pad": pad}
            snapshot = {"type": "stats", "data": seq, "timestamp": protocol.utc_timestamp()}
            stats.hub.publish_stats(protocol.encode(snapshot))
            action = protocol.audit_action(data={"id": str(i), "pad": pad})
            stats.hub.publish_notification(action)
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
            "members": stats.connections,
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
    from asgi_adminstats import listening_socket

    # Accepted sockets inherit both options from the listener.
    sock = listening_socket(
        "127.0.0.1",
        0,
        user_timeout=spec["user_timeout_ms"] / 1000 or None,
        send_buffer=spec.get("sndbuf") or None,
        backlog=128,
    )
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
