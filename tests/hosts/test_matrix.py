"""The host x server matrix: every supported host framework under every supported ASGI
server, as real processes with real clients.

Each cell starts one server process serving one host app of ``support.hosts`` (configured
only through ``ADMINSTATS_*`` variables, as a deployment would be) and proves, end to end:
the WebSocket endpoint at ``/admin/ws`` (Authorization header) and ``/admin/ws/``
(subprotocol token) sends ``connected`` and a ``stats_update`` snapshot and answers
``ping``; the HTTP endpoints (health with and without the slash, metrics, client.js) and
the host's own routes answer; a host route's ``record_action`` reaches a connected client
at once; a foreign Origin gets HTTP 403 before the upgrade; and on SIGTERM a connected
client sees a close code the server is known to send, the process exits in time, and its
log has no traceback. The expected shutdown codes are docs/PROTOCOL.md's table ("What a
client sees when the server shuts down"): the component's own 1001 going away, and the
code each server sends on its own where the component cannot close first.

The first request of each cell is ``GET /admin/ws/health``, as a load balancer's check
would be: under daphne (no lifespan) a Starlette ``Mount`` gets its bare ``/admin/ws``
routed from the first request below it (README, "Wiring it in").
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sqlite3
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx2
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from helpers.cluster import ROOT, free_port
from support.demo_db import prepare_database
from support.hosts import ACTION, HOSTS
from support.loopback import ORIGIN, SECRET, client, closed, recv, recv_type, token

__all__ = ["READY_TIMEOUT", "SERVERS", "SHUTDOWN_CODES", "STOP_TIMEOUT"]

pytestmark = pytest.mark.hosts

#: The command line (after ``python -m``) of each server for an ASGI target and a port.
SERVERS: dict[str, Callable[[str, int], list[str]]] = {
    "uvicorn-websockets": lambda app, port: [
        *("uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--ws", "websockets")
    ],
    "uvicorn-sansio": lambda app, port: [
        *("uvicorn", app, "--host", "127.0.0.1", "--port", str(port)),
        *("--ws", "websockets-sansio"),
    ],
    "uvicorn-wsproto": lambda app, port: [
        *("uvicorn", app, "--host", "127.0.0.1", "--port", str(port), "--ws", "wsproto")
    ],
    # One process, as the README recommends: with worker processes (its default) the
    # signal reaches only the parent, the component cannot close first, and clients get
    # 1011 after the graceful timeout (PROTOCOL.md).
    "hypercorn": lambda app, port: ["hypercorn", "--workers", "0", "-b", f"127.0.0.1:{port}", app],
    "daphne": lambda app, port: ["daphne", "-b", "127.0.0.1", "-p", str(port), app],
    "granian": lambda app, port: [
        *("granian", "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port)),
        *("--workers", "1", app),
    ],
}

#: What a connected client sees on SIGTERM (PROTOCOL.md's table): the component's 1001
#: where it closes first; daphne drops any 1xxx but 1000 (1006); granian at times stops
#: the connection before the component's close frame is out (1006, ~1 run in 8 here).
SHUTDOWN_CODES: dict[str, frozenset[int]] = {
    "uvicorn-websockets": frozenset({1001}),
    "uvicorn-sansio": frozenset({1001}),
    "uvicorn-wsproto": frozenset({1001}),
    "hypercorn": frozenset({1001}),
    "granian": frozenset({1001, 1006}),
    "daphne": frozenset({1006}),
}

READY_TIMEOUT = 30.0  # until /admin/ws/health answers (1-3 s here, 1 s of it the import)
STOP_TIMEOUT = 20.0  # from SIGTERM until the process has exited
FOREIGN_ORIGIN = "http://evil.example.com"


class Cell:
    """One server process of one host; its log is a file, so a full pipe never blocks it."""

    def __init__(self, name: str, argv: list[str], tmp: Path, env: dict[str, str]) -> None:
        self.name = name
        self.log = tmp / "server.log"
        with self.log.open("wb") as log:
            # A session of its own: the group (granian's worker too) is killed at the end.
            self.proc = subprocess.Popen(
                [sys.executable, "-m", *argv],
                cwd=tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    @contextlib.contextmanager
    def step(self, what: str) -> Iterator[None]:
        """Name the cell and the step in any failure, with the server's log tail."""
        try:
            yield
        except Exception as exc:
            where = "".join(traceback.format_tb(exc.__traceback__, limit=-2))
            message = (
                f"[{self.name}] step {what!r} failed: {type(exc).__name__}: {exc}\n{where}"
                f"--- server output (last lines) ---\n{self.tail()}"
            )
            # The message alone: no Python traceback, nor the original exception again.
            raise pytest.fail.Exception(message, pytrace=False) from None

    async def exited(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server still runs {timeout:.0f} s after SIGTERM")
            await asyncio.sleep(0.05)
        return code

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)


async def _ready(cell: Cell, http: httpx2.AsyncClient) -> httpx2.Response:
    """The first answer of /admin/ws/health, polled until READY_TIMEOUT."""
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        if cell.proc.poll() is not None:
            raise RuntimeError(f"the server exited with {cell.proc.returncode}")
        with contextlib.suppress(httpx2.TransportError):
            return await http.get("/admin/ws/health")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no answer on /admin/ws/health in {READY_TIMEOUT:.0f} s")
        await asyncio.sleep(0.05)


async def _session_starts(ws: ClientConnection) -> None:
    assert (await recv(ws))["type"] == "connected"
    snapshot = await recv_type(ws, "stats_update")
    assert {"online", "totals", "activity", "system", "meta"} <= set(snapshot["data"])
    await ws.send('{"type": "ping"}')
    await recv_type(ws, "pong")


def _target_of(db: Path, audit_id: str) -> str | None:
    """The target id stored with an audit row (the wire never carries it)."""
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        row = conn.execute("SELECT target_id FROM audit_log WHERE id = ?", (int(audit_id),))
        found = row.fetchone()
    return None if found is None else str(found[0])


@pytest.mark.parametrize("server", list(SERVERS))
@pytest.mark.parametrize("host", list(HOSTS))
async def test_cell(host: str, server: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    name = f"{host}-{server}"
    # Measurements for a --junitxml report (record_property would warn under xunit2).
    note = request.node.user_properties.append
    db = tmp_path / "stats.db"
    await prepare_database(f"sqlite:///{db}")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    env.update(
        PYTHONPATH=str(ROOT),
        ADMINSTATS_JWT_SECRET=SECRET,
        ADMINSTATS_ALLOWED_ORIGINS=ORIGIN,
        ADMINSTATS_DATABASE_URL=f"sqlite:///{db}",
        ADMINSTATS_BROADCAST_URL="memory://",
        ADMINSTATS_INSTANCE_NAME=name,
    )
    port = free_port()
    began = time.monotonic()
    cell = Cell(name, SERVERS[server](HOSTS[host], port), tmp_path, env)
    base = f"127.0.0.1:{port}"
    try:
        async with httpx2.AsyncClient(base_url=f"http://{base}", timeout=5) as http:
            with cell.step("start: /admin/ws/health answers"):
                await _ready(cell, http)
            note(("startup_s", round(time.monotonic() - began, 2)))
            offer = [Subprotocol("adminstats.v1"), Subprotocol(f"bearer.{token()}")]
            async with contextlib.AsyncExitStack() as stack:
                with cell.step("WebSocket /admin/ws, Authorization header"):
                    url = f"ws://{base}/admin/ws"
                    by_header = await stack.enter_async_context(client(url, tok=token()))
                    await _session_starts(by_header)
                with cell.step("WebSocket /admin/ws/, subprotocol token"):
                    url = f"ws://{base}/admin/ws/"
                    by_subprotocol = await stack.enter_async_context(
                        client(url, subprotocols=offer)
                    )
                    assert by_subprotocol.subprotocol == "adminstats.v1"
                    await _session_starts(by_subprotocol)
                with cell.step("HTTP endpoints"):
                    await _http_endpoints(http)
                with cell.step("POST /action reaches a connected client"):
                    target = secrets.token_hex(8)
                    answer = await http.post("/action", params={"target": target})
                    assert answer.status_code == 200, answer.text
                    assert answer.json() == {"recorded": True}
                    pushed = (await recv_type(by_header, "audit_action"))["data"]
                    assert (pushed["action"], pushed["admin"], pushed["targetType"]) == ACTION
                    assert _target_of(db, pushed["id"]) == target
                with cell.step("a foreign Origin gets 403 before the upgrade"):
                    with pytest.raises(InvalidStatus) as refused:
                        async with client(
                            f"ws://{base}/admin/ws", tok=token(), origin=FOREIGN_ORIGIN
                        ):
                            pass
                    assert refused.value.response.status_code == 403
                await _shutdown(cell, server, [by_header, by_subprotocol], note)
    finally:
        cell.kill()
        note(("cell_s", round(time.monotonic() - began, 2)))


async def _http_endpoints(http: httpx2.AsyncClient) -> None:
    for path in ("/admin/ws/health", "/admin/ws/health/"):
        health = await http.get(path)
        assert health.status_code == 200, (path, health.status_code, health.text)
        assert health.json()["status"] in {"ok", "degraded"}, (path, health.text)
    metrics = await http.get("/admin/ws/metrics")
    assert metrics.status_code == 200, metrics.text
    assert metrics.headers["content-type"].startswith("text/plain"), metrics.headers
    assert "# TYPE " in metrics.text, metrics.text[:200]
    script = await http.get("/admin/ws/client.js")
    assert script.status_code == 200, script.status_code
    assert "javascript" in script.headers["content-type"], script.headers
    home = await http.get("/")
    assert home.status_code == 200, (home.status_code, home.text[:200])


async def _shutdown(
    cell: Cell,
    server: str,
    sockets: list[ClientConnection],
    note: Callable[[tuple[str, object]], None],
) -> None:
    """SIGTERM with clients connected: a known close code, a timely exit, no traceback."""
    stopping = time.monotonic()
    cell.proc.send_signal(signal.SIGTERM)
    with cell.step("SIGTERM: the clients see a close code"):
        closes = await asyncio.gather(*(closed(ws, 10) for ws in sockets))
    codes = [int(code) for code, _ in closes]
    note(("shutdown_codes", codes))
    with cell.step(f"SIGTERM: the process exits within {STOP_TIMEOUT:.0f} s"):
        note(("exit_code", await cell.exited(STOP_TIMEOUT)))
    note(("shutdown_s", round(time.monotonic() - stopping, 2)))
    with cell.step("SIGTERM: the close codes"):
        assert set(codes) <= SHUTDOWN_CODES[server], f"{codes} not in {SHUTDOWN_CODES[server]}"
        assert all(reason == "going away" for code, reason in closes if code == 1001), closes
    with cell.step("SIGTERM: no traceback in the server output"):
        if count := cell.output().count("Traceback"):
            raise AssertionError(f"{count} traceback(s) in the server output")
