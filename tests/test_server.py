"""asgi_adminstats.server: the recommended uvicorn run bounds what a hostile client costs.

The floods run against a real server in its own process (bench/server_script.py), whose
RSS is read with psutil; the clients are raw sockets (tests/helpers/hostile.py) that write
frames by hand and never read. The bounds are the issue's (15): a 15 s ping flood leaves RSS
growth under 16 MiB while a dashboard keeps its ticks, 20 permessage-deflate bombs of
15 MiB under 32 MiB. Under uvicorn's plain defaults the same floods grow RSS by hundreds of
MiB (bench/unauth_cost.py measures both). The protocol class is also driven directly,
with a transport that records what is asked of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import struct
import sys
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest
import uvicorn
from uvicorn.server import ServerState

from asgi_adminstats import AdminStats, Settings
from asgi_adminstats.server import (
    PING_BURST,
    PING_RATE,
    HardenedWebSocketProtocol,
    uvicorn_config,
)

from helpers.hostile import RawClient, StatsWatcher, assert_serves_healthy_client
from helpers.services import free_port
from support.demo_db import prepare_database
from support.loopback import (
    ORIGIN,
    SECRET,
    client,
    closed,
    make_settings,
    recv,
    recv_type,
    serve,
    starlette_host,
    token,
)
from support.rss import peak_rss
from support.wire import handshake_request, parse_frames

SCRIPT = Path(__file__).resolve().parent.parent / "bench" / "server_script.py"
MIB = 1 << 20
STATS_INTERVAL = 0.5
OPCODE_TEXT, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG = 0x1, 0x8, 0x9, 0xA


def client_frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    """One masked client frame, as a browser would write it."""
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    if len(payload) < 126:
        head += bytes([0x80 | len(payload)])
    elif len(payload) < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", len(payload))
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def deflate_bomb(size: int) -> bytes:
    """A text frame compressed with permessage-deflate (RSV1) inflating to ``size`` spaces."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -12)  # the server allows 12-bit windows
    data = compressor.compress(b" " * size) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert data.endswith(b"\x00\x00\xff\xff")
    return client_frame(OPCODE_TEXT, data[:-4], rsv1=True)  # RFC 7692 7.2.1: tail removed


@dataclass
class Served:
    addr: str
    process: psutil.Process

    def rss(self) -> int:
        return int(self.process.memory_info().rss)


@contextlib.asynccontextmanager
async def server_process(
    tmp_path: Path, config: str = "recommended", **env: str
) -> AsyncIterator[Served]:
    """bench/server_script.py on a free loopback port; killed on leaving."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    environ.update(
        ADMINSTATS_JWT_SECRET=SECRET,
        ADMINSTATS_ALLOWED_ORIGINS=ORIGIN,
        ADMINSTATS_STATS_INTERVAL=str(STATS_INTERVAL),
        ADMINSTATS_INSTANCE_NAME="flooded",
        **env,
    )
    args = ["--port", str(port), "--db", str(tmp_path / "s.db"), "--server", config]
    proc = await asyncio.create_subprocess_exec(sys.executable, str(SCRIPT), *args, env=environ)
    try:
        addr = f"127.0.0.1:{port}"
        for _ in range(200):  # 20 s at most
            assert proc.returncode is None, "the server exited during start-up"
            with contextlib.suppress(OSError):
                await assert_serves_healthy_client(addr, source="127.0.0.2")
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError("the server did not serve within 20 s")
        yield Served(addr, psutil.Process(proc.pid))
    finally:
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5)


async def raw_handshake(
    addr: str, headers: dict[str, str], *, source: str = "127.0.0.1"
) -> tuple[RawClient, bytes]:
    raw = await RawClient.open(addr, source=source)
    await raw.send(handshake_request(addr, headers))
    head = b""
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(5):
        while b"\r\n\r\n" not in head:
            chunk = await loop.sock_recv(raw.sock, 1)
            assert chunk, f"EOF during the handshake: {head!r}"
            head += chunk
    return raw, head


async def ping_flood(raw: RawClient, seconds: float) -> int:
    """125-byte pings for ``seconds`` without reading anything; the bytes the kernel took."""
    chunk = b"".join(client_frame(OPCODE_PING, os.urandom(125)) for _ in range(500))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    sent = 0
    while (left := deadline - loop.time()) > 0:
        try:
            await asyncio.wait_for(loop.sock_sendall(raw.sock, chunk), left)
        except (TimeoutError, OSError):  # the server stopped reading, or dropped us
            break
        sent += len(chunk)
    with contextlib.suppress(TimeoutError):  # a blocked send counts its full time
        await asyncio.sleep(max(0.0, deadline - loop.time()))
    return sent


# --- floods against a real server --------------------------------------------------


async def test_ping_flood_leaves_rss_flat_and_dashboards_on_their_ticks(tmp_path: Path) -> None:
    """Issue 15 item 1: one token-less and one authenticated socket ping for 15 s, unread."""
    async with server_process(tmp_path) as served:
        async with client(f"ws://{served.addr}/admin/ws", tok=token("dashboard")) as healthy:
            assert (await recv(healthy))["type"] == "connected"
            watcher = StatsWatcher(healthy)
            watcher.start()
            anonymous, head = await raw_handshake(served.addr, {})
            assert head.startswith(b"HTTP/1.1 101"), head
            admin, head = await raw_handshake(
                served.addr, {"Authorization": f"Bearer {token('flooder')}"}
            )
            assert head.startswith(b"HTTP/1.1 101"), head
            try:
                await asyncio.sleep(2 * STATS_INTERVAL)  # the dashboard's first ticks
                async with peak_rss(served.rss) as rss:
                    started = time.monotonic()
                    sent = await asyncio.gather(ping_flood(anonymous, 15), ping_flood(admin, 15))
                    ended = time.monotonic()
                gap = watcher.max_gap(started, ended)
            finally:
                anonymous.close()
                admin.close()
                await watcher.stop()
        # The flood did happen (the server read megabytes of pings before throttling).
        assert sum(sent) > 1 * MIB, sent
        growth = rss.peak - rss.baseline
        assert growth < 16 * MIB, f"RSS grew {growth / MIB:.1f} MiB"
        assert gap < 3 * STATS_INTERVAL, f"a {gap:.2f} s gap between snapshots"
        await assert_serves_healthy_client(served.addr, source="127.0.0.3")


async def test_deflate_bombs_leave_rss_flat(tmp_path: Path) -> None:
    """Issue 15 item 4: 20 permessage-deflate bombs of 15 MiB at once, no token."""
    offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}
    bomb = deflate_bomb(15 * MIB)
    # Small enough to pass the frame-size check: only the inflated size is over it.
    small_bomb = deflate_bomb(3 * MIB)
    assert len(small_bomb) < 4096

    async def drop(frame: bytes, source: str) -> tuple[int, bytes]:
        raw, head = await raw_handshake(served.addr, offer, source=source)
        try:
            assert head.startswith(b"HTTP/1.1 101"), head
            assert b"permessage-deflate" in head, head
            await raw.send(frame)
            frames = parse_frames(await raw.read_available(limit=10, quiet=5))
        finally:
            raw.close()
        assert frames and frames[-1][0] == OPCODE_CLOSE, frames[-3:]
        return int.from_bytes(frames[-1][1][:2], "big"), frames[-1][1][2:]

    async with server_process(tmp_path) as served:
        async with peak_rss(served.rss) as rss:
            # One source address each: the attempt limit and pending budgets stay out of it.
            closes = await asyncio.gather(
                *(drop(bomb, f"127.0.1.{i}") for i in range(1, 21)),
                drop(small_bomb, "127.0.2.1"),
            )
        assert [code for code, _ in closes] == [1009] * 21, closes
        growth = rss.peak - rss.baseline
        assert growth < 32 * MIB, f"RSS grew {growth / MIB:.1f} MiB"
        await assert_serves_healthy_client(served.addr, source="127.0.0.3")


# --- the recommended configuration ---------------------------------------------------


def test_uvicorn_config_is_the_recommended_one() -> None:
    settings = Settings(jwt_secret=SECRET, max_message_bytes=2048)
    config = uvicorn_config(None, settings, host="127.0.0.1", port=0)
    assert config.ws is HardenedWebSocketProtocol
    assert config.ws_max_size == 2 * 2048
    assert config.proxy_headers is False
    proxied = uvicorn_config(None, settings, forwarded_allow_ips=["10.0.0.1"], timeout_keep_alive=7)
    assert proxied.proxy_headers is True
    assert proxied.forwarded_allow_ips == ["10.0.0.1"]
    assert proxied.timeout_keep_alive == 7


async def test_frames_over_the_limit_1009_the_component_or_websockets(tmp_path: Path) -> None:
    """Just over max_message_bytes: the component's own 1009; far over: websockets' 1009
    before the payload (ws_max_size), here a declared 1 GiB that is never sent."""
    settings = make_settings(tmp_path)
    await prepare_database(settings.database_url)
    stats = AdminStats(settings)
    recommended = uvicorn_config(None, settings)
    options = {name: getattr(recommended, name) for name in ("ws", "ws_max_size")}
    async with serve(starlette_host(stats), **options) as addr:
        async with client(f"ws://{addr}/admin/ws") as ws:
            await ws.send("x" * (stats.settings.max_message_bytes + 1))
            assert await closed(ws) == (1009, "message too big")
        raw, head = await raw_handshake(addr, {})
        try:
            assert head.startswith(b"HTTP/1.1 101"), head
            await raw.send_frame(OPCODE_TEXT, b"{", declared_length=1 << 30)
            frames = parse_frames(await raw.read_available(limit=5, quiet=2))
        finally:
            raw.close()
        assert frames and frames[-1][0] == OPCODE_CLOSE, frames
        assert int.from_bytes(frames[-1][1][:2], "big") == 1009
        await assert_serves_healthy_client(addr)


# --- the protocol class, driven by hand ----------------------------------------------


class RecordingTransport(asyncio.Transport):
    """What the protocol asks of its transport; ``buffered`` plays the write buffer."""

    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.closing = False
        self.aborted = False
        self.written = bytearray()
        self.buffered = 0

    def is_reading(self) -> bool:
        return self.reading

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def write(self, data: Any) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = self.aborted = True

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return 16384, 65536

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def _idle_app(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "websocket.accept"})
    await asyncio.Event().wait()  # the test reads the queue itself


@contextlib.contextmanager
def opened(close_timeout: float = 10.0) -> Iterator[tuple[HardenedWebSocketProtocol, Any]]:
    config = uvicorn.Config(_idle_app, ws=HardenedWebSocketProtocol, log_level="warning")
    config.load()
    protocol = HardenedWebSocketProtocol(config, ServerState(), {})
    protocol.close_timeout = close_timeout
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(handshake_request("127.0.0.1:1", {}))
    try:
        yield protocol, transport
    finally:
        for task in list(protocol.tasks):
            task.cancel()
        if not protocol.disconnected:
            protocol.connection_lost(None)


async def received(protocol: HardenedWebSocketProtocol) -> dict[str, Any]:
    return dict(await asyncio.wait_for(protocol.receive(), 1))


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_reading_resumes_only_when_the_app_and_the_buffer_both_allow_it() -> None:
    with opened() as (protocol, transport):
        await _settle()  # the app accepts
        assert transport.written.startswith(b"HTTP/1.1 101")
        assert await received(protocol) == {"type": "websocket.connect"}
        protocol.data_received(client_frame(OPCODE_TEXT, b"hello"))
        assert protocol.read_paused and not transport.reading  # uvicorn: the app's queue
        protocol.pause_writing()  # the peer stopped reading
        assert await received(protocol) == {"type": "websocket.receive", "text": "hello"}
        assert not protocol.read_paused  # uvicorn would read again...
        assert not transport.reading  # ...but the write buffer is over its mark
        protocol.resume_writing()
        assert transport.reading
        # The other order: the buffer drains while the app's queue is still full.
        protocol.pause_writing()
        protocol.data_received(client_frame(OPCODE_TEXT, b"again"))
        protocol.resume_writing()
        assert not transport.reading
        assert await received(protocol) == {"type": "websocket.receive", "text": "again"}
        assert transport.reading


async def test_pings_read_at_once_get_one_pong_and_none_over_the_mark() -> None:
    with opened() as (protocol, transport):
        await _settle()
        transport.written.clear()
        protocol.data_received(b"".join(client_frame(OPCODE_PING, b"%d" % i) for i in range(3)))
        assert parse_frames(bytes(transport.written)) == [(OPCODE_PONG, b"2")]
        transport.written.clear()
        transport.buffered = 70000  # over the high-water mark: the peer does not read
        protocol.pause_writing()
        protocol.data_received(b"".join(client_frame(OPCODE_PING, b"x%d" % i) for i in range(3)))
        assert transport.written == b""
        transport.buffered = 0
        protocol.resume_writing()
        assert parse_frames(bytes(transport.written)) == [(OPCODE_PONG, b"x2")]


async def test_a_ping_flood_is_throttled_not_closed() -> None:
    with opened() as (protocol, transport):
        await _settle()
        burst = b"".join(client_frame(OPCODE_PING, b"p") for _ in range(PING_BURST))
        protocol.data_received(burst)
        assert transport.reading
        protocol.data_received(client_frame(OPCODE_PING, b"one too many"))
        assert not transport.reading and not transport.closing
        for _ in range(int(2 / PING_RATE / 0.02)):  # one token comes back in 1 / PING_RATE
            if transport.reading:
                break
            await asyncio.sleep(0.02)
        assert transport.reading


async def test_a_close_that_never_drains_is_aborted_after_the_close_timeout() -> None:
    with opened(close_timeout=0.1) as (protocol, transport):
        await _settle()
        transport.buffered = 70000  # the close frame and what came before stay unsent
        await asyncio.wait_for(protocol.send({"type": "websocket.close", "code": 1000}), 1)
        protocol.pause_writing()
        await asyncio.sleep(0.15)  # upstream's close timer: transport.close()
        assert transport.closing and not transport.aborted
        await asyncio.sleep(0.15)
        assert transport.aborted
    with opened(close_timeout=0.1) as (protocol, transport):
        await _settle()
        protocol.transport.close()
        protocol.connection_lost(None)  # it drained in time: nothing left to abort
        await asyncio.sleep(0.15)
        assert not transport.aborted


async def test_a_dashboard_works_through_the_recommended_config(tmp_path: Path) -> None:
    """Connect, snapshot, a ping answered, a clean close."""
    async with server_process(tmp_path) as served:
        async with client(f"ws://{served.addr}/admin/ws", tok=token("bob")) as ws:
            assert (await recv(ws))["type"] == "connected"
            assert (await recv_type(ws, "stats_update"))["data"]
            await asyncio.wait_for(await ws.ping(b"keepalive"), 5)
            await ws.close()
        assert ws.close_code == 1000


@pytest.mark.parametrize(
    ("argv", "believed"), [([], None), (["--forwarded-allow-ips", "10.0.0.5"], "10.0.0.5")]
)
def test_the_sample_app_serves_the_recommended_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], believed: str | None
) -> None:
    """``python -m sample_app``: proxy headers only from --forwarded-allow-ips."""
    import sample_app.__main__ as sample_main

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(sample_main, "run", lambda app, settings, **kw: calls.append(kw))
    for name in [n for n in os.environ if n.startswith("ADMINSTATS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'game.db'}")
    assert sample_main.main(["--port", "8123", "--no-simulate", *argv]) == 0
    [options] = calls
    assert options["forwarded_allow_ips"] == believed
    assert options.pop("user_timeout") == 30.0  # listening_socket's
    assert options["port"] == 8123
    config = uvicorn_config(None, Settings(jwt_secret=SECRET), **options)
    assert config.proxy_headers is (believed is not None)
