"""``AdminStatsClient`` and ``adminstats tail`` against real servers (uvicorn + AdminStats).

Every wait is bounded; servers and clients live in the test's event loop, and ``tail``
runs as a subprocess so the server keeps serving while it does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_adminstats import AdminStats, protocol
from asgi_adminstats.client import (
    AdminStatsClient,
    ConnectionRejected,
    ReconnectFailed,
    backoff_delay,
)
from asgi_adminstats.client._ids import RecentIds
from asgi_adminstats.client._outcome import Ended, verdict

from helpers.streams import gather_for, next_of
from support.demo_db import prepare_database
from support.loopback import client, closed, make_settings, starlette_host, token

Message = dict[str, Any]


def state(stream: AdminStatsClient) -> str:
    """The state now (a call, so mypy does not keep an earlier assert's narrowing)."""
    return stream.state


def client_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("adminstats-client")]


class Attempts:
    """An ASGI wrapper counting WebSocket connection attempts reaching the host."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            self.count += 1
        await self.app(scope, receive, send)


# --- connecting and receiving --------------------------------------------------------


async def test_receives_connected_stats_and_audit(start: Any) -> None:
    stats, addr = await start()
    async with AdminStatsClient(f"ws://{addr}/admin/ws", token=token()) as stream:
        connected = await next_of(stream, "connected")
        assert stream.state == "connected"
        assert stream.connection_id == connected["connectionId"]
        snapshot = await next_of(stream, "stats_update")
        assert snapshot["data"]["online"]["users"] == 2
        action = await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 7)
        pushed = await next_of(stream, "audit_action")
        assert pushed["data"]["id"] == action["id"]
        assert "replayed" not in pushed["data"]
        assert stream.last_audit_id == action["id"]
        assert stream.reconnects == 0
    assert state(stream) == "disconnected"
    assert stream.connection_id is None
    assert client_tasks() == []
    with pytest.raises(StopAsyncIteration):
        await stream.__anext__()


async def test_repeated_audit_actions_are_dropped(start: Any) -> None:
    stats, addr = await start()
    async with AdminStatsClient(f"ws://{addr}/admin/ws", token=token()) as stream:
        await next_of(stream, "stats_update")
        first = await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
        # The same action on the wire again, as a second instance or a replay would send it.
        again = protocol.audit_action(data=first)
        stats.hub.publish_notification(again)
        stats.hub.publish_notification(again)
        second = await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1)
        messages = await gather_for(stream, 0.5)
    ids = [m["data"]["id"] for m in messages if m["type"] == "audit_action"]
    assert ids == [first["id"], second["id"]]


def test_recent_ids_are_bounded() -> None:
    recent = RecentIds(limit=1000)
    assert all(recent.add(str(i)) for i in range(1500))
    assert len(recent) == 1000
    assert not recent.add("1499")
    assert recent.add("3")  # forgotten: long gone from any replay window


async def test_pong_keeps_a_short_heartbeat_alive(start: Any) -> None:
    _, addr = await start(heartbeat_interval=0.3, heartbeat_timeout=0.2)
    url = f"ws://{addr}/admin/ws"
    async with AdminStatsClient(url, token=token()) as stream, client(url, tok=token()) as mute:
        connected = await next_of(stream, "connected")
        # A client that never answers is closed within one interval and timeout...
        assert await closed(mute, timeout=2) == (4408, "timeout: no pong")
        # ...while this one, answering each ping, stays on the same connection.
        messages = await gather_for(stream, 1.2)
        assert stream.state == "connected"
        assert stream.connection_id == connected["connectionId"]
        assert stream.reconnects == 0
    assert all(m["type"] != "ping" for m in messages)


async def test_unwanted_subscriptions_are_dropped(start: Any) -> None:
    stats, addr = await start()
    url = f"ws://{addr}/admin/ws"
    async with AdminStatsClient(url, token=token(), subscriptions=["stats"]) as stream:
        subscribed = await next_of(stream, "subscribed")
        assert subscribed["subscriptions"] == ["stats"]
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
        messages = await gather_for(stream, 0.4)
    assert all(m["type"] != "audit_action" for m in messages)


# --- reconnecting --------------------------------------------------------------------


def bound_socket(port: int = 0) -> socket.socket:
    """127.0.0.1:``port`` with SO_REUSEADDR, so a restarted server gets the same port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    return sock


@contextlib.asynccontextmanager
async def serve_on(app: Any, sock: socket.socket) -> AsyncIterator[None]:
    """``support.loopback.serve`` on a socket of ours (a fixed port)."""
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        assert server.started, "uvicorn did not start in 5 s"
        yield
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


async def test_reconnects_after_a_restart_and_replays_what_it_missed(
    tmp_path: Path, backend: dict[str, str]
) -> None:
    settings = make_settings(tmp_path, **backend)
    await prepare_database(settings.database_url)
    first = AdminStats(settings)
    sock = bound_socket()
    port = sock.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/admin/ws"
    stream = AdminStatsClient(
        url, token=token(), reconnect_interval=0.05, max_reconnect_interval=0.2
    )
    try:
        async with serve_on(starlette_host(first), sock):
            await stream.start()
            await next_of(stream, "connected")
            before = await first.record_action("BAN_PLAYER", "alice", "PLAYER", 1)
            assert (await next_of(stream, "audit_action"))["data"]["id"] == before["id"]
            first_connection = stream.connection_id
        # Down: the client backs off and retries against a closed port meanwhile.
        await asyncio.sleep(0.3)
        assert stream.state == "reconnecting"
        second = AdminStats(settings)
        host = Starlette(routes=[Mount("/admin/ws", app=second)])
        async with second.lifespan(host):
            missed = await second.record_action("KICK_PLAYER", "alice", "PLAYER", 2)
            async with serve_on(host, bound_socket(port)):
                connected = await next_of(stream, "connected", timeout=5)
                assert connected["connectionId"] != first_connection
                assert stream.reconnects == 1
                messages = await gather_for(stream, 0.6)
                live = await second.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1)
                messages += await gather_for(stream, 0.4)
    finally:
        await stream.close()
    actions = [m["data"] for m in messages if m["type"] == "audit_action"]
    assert [a["id"] for a in actions] == [missed["id"], live["id"]]
    assert actions[0].get("replayed") is True
    assert "replayed" not in actions[1]
    assert client_tasks() == []


async def test_backs_off_while_the_server_is_full_then_connects(start: Any) -> None:
    _, addr = await start(max_connections=1)
    url = f"ws://{addr}/admin/ws"
    async with client(url, tok=token()):  # holds the only slot
        giving_up = AdminStatsClient(
            url, token=token(), reconnect_interval=0.02, max_reconnect_attempts=2
        )
        async with giving_up:
            with pytest.raises(ReconnectFailed) as failed:
                await gather_for(giving_up, 5)
        assert (failed.value.attempts, failed.value.code) == (2, 1013)
        assert failed.value.reason == "try again later: server full"
        assert giving_up.state == "error"
        patient = AdminStatsClient(url, token=token(), reconnect_interval=0.05)
        await patient.start()
        await asyncio.sleep(0.3)
        assert patient.state == "connecting"
    try:  # the holder left: a slot is free
        await next_of(patient, "connected", timeout=5)
        assert state(patient) == "connected"
        assert patient.reconnects == 0  # never connected before: not a reconnect
    finally:
        await patient.close()
    assert client_tasks() == []


async def test_gives_up_on_a_closed_port() -> None:
    sock = bound_socket()  # bound, never listening: connections are refused
    port = sock.getsockname()[1]
    try:
        stream = AdminStatsClient(
            f"ws://127.0.0.1:{port}/admin/ws",
            token=token(),
            reconnect_interval=0.01,
            max_reconnect_attempts=3,
        )
        async with stream:
            with pytest.raises(ReconnectFailed) as failed:
                await gather_for(stream, 5)
    finally:
        sock.close()
    assert failed.value.attempts == 3
    assert failed.value.code is None
    assert "ConnectionRefusedError" in str(failed.value)


def test_backoff_delay_is_full_jitter_within_bounds() -> None:
    base, cap = 0.5, 30.0
    for attempt in range(40):
        ceiling = min(cap, base * 2**attempt)
        delays = [backoff_delay(attempt, base=base, cap=cap) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # spread, not a fixed step
        assert backoff_delay(attempt, base=base, cap=cap, rand=lambda: 0.0) == 0
        assert backoff_delay(attempt, base=base, cap=cap, rand=lambda: 1.0) == ceiling
    assert backoff_delay(10**6, base=base, cap=cap, rand=lambda: 1.0) == cap  # no overflow


@pytest.mark.parametrize(
    ("ended", "expected"),
    [
        (Ended("", code=4401, reason="unauthorized: token expired"), "auth"),
        (Ended("", code=4403, reason="forbidden: admin role required"), "auth"),
        # "the token may be fine, so a client may retry later" (PROTOCOL.md section 4)
        (Ended("", code=4401, reason="unauthorized: authorization server unavailable"), "retry"),
        *((Ended("", code=code), "retry") for code in (1000, 1001, 1006, 1011, 1012, 1013)),
        *((Ended("", code=code), "retry") for code in (4008, 4408, 4429)),
        (Ended("cannot connect: ConnectionRefusedError"), "retry"),
        (Ended("", status=429, retry_after=3), "retry"),
        (Ended("", status=503), "retry"),
        (Ended("", status=401), "auth"),
        (Ended("", status=403, reason="forbidden origin"), "fatal"),
        (Ended("", status=404), "fatal"),
    ],
)
def test_close_codes_follow_the_protocol_policy(ended: Ended, expected: str) -> None:
    assert verdict(ended) == expected


# --- a server shutting down ----------------------------------------------------------


class ClosesFirst:
    """Accepts the first ``times`` WebSocket attempts and closes them with ``code`` at once
    (a server going down, as measured in PROTOCOL.md's "Close codes"); then ``app``."""

    def __init__(self, app: Any, code: int, times: int) -> None:
        self.app = app
        self.code = code
        self.left = times
        self.attempts = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            self.attempts += 1
            if self.left > 0:
                self.left -= 1
                await receive()  # websocket.connect
                await send({"type": "websocket.accept"})
                await send({"type": "websocket.close", "code": self.code, "reason": ""})
                return
        await self.app(scope, receive, send)


@pytest.mark.parametrize("code", [1001, 1011, 1012, 1013])
async def test_a_shutdown_close_backs_off_and_reconnects(start: Any, code: int) -> None:
    # 1001 the component's going away, 1012 uvicorn's, 1011 hypercorn's, 1013 try again.
    hosts: list[ClosesFirst] = []

    def host(stats: AdminStats) -> ClosesFirst:
        hosts.append(ClosesFirst(starlette_host(stats), code, times=2))
        return hosts[-1]

    _, addr = await start(host=host)
    stream = AdminStatsClient(
        f"ws://{addr}/admin/ws", token=token(), reconnect_interval=0.05, max_reconnect_attempts=3
    )
    async with stream:
        await next_of(stream, "connected", timeout=5)
    assert hosts[0].attempts == 3  # two closes with `code`, each retried


async def test_a_drop_without_a_close_frame_is_retried_as_1006() -> None:
    # granian's shutdown (and daphne's): the TCP connection ends without a close frame.
    from websockets.asyncio.server import ServerConnection, serve

    attempts = 0

    async def drop(ws: ServerConnection) -> None:
        nonlocal attempts
        attempts += 1
        ws.transport.abort()

    async with serve(drop, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        stream = AdminStatsClient(
            f"ws://127.0.0.1:{port}/admin/ws",
            token=token(),
            reconnect_interval=0.01,
            max_reconnect_attempts=2,
        )
        async with stream:
            with pytest.raises(ReconnectFailed) as failed:
                await gather_for(stream, 5)
    assert (failed.value.attempts, failed.value.code) == (2, 1006)
    assert attempts == 3


# --- authentication ------------------------------------------------------------------


async def test_forbidden_stops_without_retrying(start: Any) -> None:
    hosts: list[Attempts] = []

    def counting(stats: AdminStats) -> Attempts:
        hosts.append(Attempts(starlette_host(stats)))
        return hosts[-1]

    _, addr = await start(host=counting)
    url = f"ws://{addr}/admin/ws"
    player = token("bob", roles=("player",))
    stream = AdminStatsClient(url, token=player, reconnect_interval=0.01)
    async with stream:
        with pytest.raises(ConnectionRejected) as rejected:
            await gather_for(stream, 5)
        await asyncio.sleep(0.2)  # room for a wrong retry to show up
    assert (rejected.value.code, rejected.value.reason) == (4403, "forbidden: admin role required")
    assert stream.state == "error"
    assert hosts[0].count == 1
    assert player not in str(rejected.value)

    # With get_token: one more try with a fresh token, then the same verdict.
    calls: list[int] = []

    def still_a_player() -> str:
        calls.append(1)
        return token("bob", roles=("player",))

    async with AdminStatsClient(url, token=player, get_token=still_a_player) as stream:
        with pytest.raises(ConnectionRejected) as rejected:
            await gather_for(stream, 5)
    assert rejected.value.code == 4403
    assert (hosts[0].count, len(calls)) == (3, 1)


async def test_unauthorized_retries_once_with_a_new_token(start: Any) -> None:
    hosts: list[Attempts] = []

    def counting(stats: AdminStats) -> Attempts:
        hosts.append(Attempts(starlette_host(stats)))
        return hosts[-1]

    _, addr = await start(host=counting)
    url = f"ws://{addr}/admin/ws"
    fetched: list[str] = []

    async def fresh() -> str:
        fetched.append(token())
        return fetched[-1]

    expired = token(ttl=-120)
    async with AdminStatsClient(url, token=expired, get_token=fresh) as stream:
        await next_of(stream, "connected")
        assert stream.state == "connected"
    assert (hosts[0].count, len(fetched)) == (2, 1)

    async def garbage() -> str:
        return "not.a.token"

    async with AdminStatsClient(url, token=expired, get_token=garbage) as stream:
        with pytest.raises(ConnectionRejected) as rejected:
            await gather_for(stream, 5)
    assert (rejected.value.code, rejected.value.reason) == (4401, "unauthorized: invalid token")
    assert hosts[0].count == 4


async def test_token_refresh_keeps_the_connection_past_the_old_expiry(start: Any) -> None:
    _, addr = await start(token_refresh_margin=2, jwt_leeway=0)
    url = f"ws://{addr}/admin/ws"
    short = token(ttl=3)
    exp = int(time.time()) + 3  # mint_token's own arithmetic, give or take a second
    refreshed: list[str] = []

    def refresh() -> str:  # a plain function: runs in a worker thread
        refreshed.append(token(ttl=60))
        return refreshed[-1]

    async def stays(stream: AdminStatsClient) -> list[Message]:
        await next_of(stream, "connected")
        return await gather_for(stream, exp + 1.2 - time.time())

    async def expires(stream: AdminStatsClient) -> list[Message]:
        seen: list[Message] = []
        with pytest.raises(ConnectionRejected) as rejected:
            async with asyncio.timeout(6):
                async for message in stream:
                    seen.append(message)
        assert (rejected.value.code, rejected.value.reason) == (
            4401,
            "unauthorized: token expired",
        )
        return seen

    async with (
        AdminStatsClient(url, token=short, get_token=refresh) as kept,
        AdminStatsClient(url, token=short) as lapsed,
    ):
        kept_messages, lapsed_messages = await asyncio.gather(stays(kept), expires(lapsed))
        assert kept.state == "connected"
        assert kept.reconnects == 0
    assert len(refreshed) == 1
    assert all(m["type"] != "token_expiring" for m in kept_messages)
    # Without get_token the warning is passed on: the application may want to know.
    assert any(m["type"] == "token_expiring" for m in lapsed_messages)
    assert time.time() > exp


# --- adminstats tail -----------------------------------------------------------------


@contextlib.asynccontextmanager
async def tail(
    *args: str, env_token: str | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    if env_token is not None:
        env["ADMINSTATS_TOKEN"] = env_token
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asgi_adminstats",
        "tail",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def read_until(
    proc: asyncio.subprocess.Process, done: Callable[[str], bool], timeout: float = 15
) -> list[str]:
    """stdout lines up to and including the first for which ``done`` is true."""
    assert proc.stdout is not None
    lines: list[str] = []
    async with asyncio.timeout(timeout):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"tail exited early: {lines}"
            lines.append(line.rstrip("\n"))
            if done(lines[-1]):
                return lines


async def interrupt(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    """Ctrl-C; the exit status and the rest of stdout and stderr."""
    proc.send_signal(signal.SIGINT)
    out, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_tail_json_prints_one_message_per_line(start: Any) -> None:
    stats, addr = await start()
    secret = token()
    async with tail(f"ws://{addr}/admin/ws", "--json", env_token=secret) as proc:
        lines = await read_until(proc, lambda line: '"stats_update"' in line)
        await stats.record_action("BAN_PLAYER", "alice", "PLAYER", 3)
        lines += await read_until(proc, lambda line: '"audit_action"' in line)
        code, rest, err = await interrupt(proc)
    lines += rest.splitlines()
    assert code == 0, err
    messages = [json.loads(line) for line in lines]
    assert all(isinstance(m, dict) and isinstance(m.get("type"), str) for m in messages)
    assert [m["type"] for m in messages][:2] == ["connected", "stats_update"]
    assert "audit_action" in [m["type"] for m in messages]
    assert secret not in "\n".join(lines) + err
    assert "Traceback" not in err


async def test_tail_prints_readable_lines(start: Any) -> None:
    stats, addr = await start()
    secret = token()
    async with tail(f"ws://{addr}/admin/ws", "--token", secret) as proc:
        lines = await read_until(proc, lambda line: "online" in line)
        await stats.record_action("BAN_PLAYER", "alice\x1b[2J", "PLAYER", 3)
        lines += await read_until(proc, lambda line: "BAN_PLAYER" in line)
        code, rest, err = await interrupt(proc)
    assert code == 0, err
    stats_line, action_line = lines[0], lines[-1]
    assert "online 2 users, 2 players" in stats_line
    assert " connections | " in stats_line and " MiB | up " in stats_line
    assert "db healthy" in stats_line and "test-1" in stats_line
    # No escape reaches a tty; the id shown is the audit row's.
    assert "BAN_PLAYER by alice\\x1b[2J on PLAYER (audit #" in action_line
    assert "connected as alice" in err
    assert secret not in "\n".join(lines) + rest + err


async def test_tail_exits_3_when_refused(start: Any) -> None:
    _, addr = await start()
    secret = token("bob", roles=("player",))
    async with tail(f"ws://{addr}/admin/ws", "--token", secret) as proc:
        out, err = await asyncio.wait_for(proc.communicate(), 15)
    assert proc.returncode == 3
    assert "forbidden: admin role required" in err.decode()
    assert "Traceback" not in err.decode()
    assert secret not in out.decode() + err.decode()


async def test_tail_other_fatal_errors_exit_1_in_one_line() -> None:
    sock = bound_socket()
    port = sock.getsockname()[1]
    try:
        args = (f"ws://127.0.0.1:{port}/admin/ws", "--max-reconnect-attempts", "0")
        async with tail(*args, env_token=token()) as proc:
            out, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        sock.close()
    assert proc.returncode == 1
    lines = err.decode().strip().splitlines()
    assert lines[-1].startswith("adminstats tail: ReconnectFailed: gave up after 0")
    assert "Traceback" not in err.decode()
    assert out == b""


def test_without_websockets_tail_says_what_to_install() -> None:
    script = (
        "import sys; sys.modules['websockets'] = None\n"  # as if not installed
        "from asgi_adminstats.cli import main\n"
        "sys.exit(main(['tail', 'ws://127.0.0.1:9/admin/ws', '--token', 'abc']))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    result = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "adminstats tail: AdminStatsClient needs the 'websockets' package: "
        "pip install 'asgi-adminstats[client]'"
    )
