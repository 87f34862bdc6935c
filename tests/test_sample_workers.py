"""The README's several-workers commands, ``uvicorn --factory
sample_app.__main__:app_from_env --workers 2`` and ``python -m sample_app --workers 2``,
on a Redis bus, from a fresh database."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from asgi_adminstats import SettingsError, mint_token
from sample_app.__main__ import app_from_env, main

from helpers import services
from support.loopback import client, closed, recv, recv_type

ROOT = Path(__file__).resolve().parent.parent
SECRET = "workers-secret-" + "w" * 32
CLIENTS = 8


def test_the_factory_wants_a_shared_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ADMINSTATS_"):
            monkeypatch.delenv(name)
    with pytest.raises(SettingsError, match="ADMINSTATS_JWT_SECRET"):
        app_from_env()


#: The two ways the README gives: uvicorn's workers (one shared listening socket) and the
#: sample app's own ``--workers`` (asgi_adminstats.server.run: a socket per worker).
COMMANDS = {
    "uvicorn": (
        *("-m", "uvicorn", "--factory", "sample_app.__main__:app_from_env", "--workers", "2"),
        *("--no-proxy-headers", "--ws", "asgi_adminstats.server:HardenedWebSocketProtocol"),
        *("--ws-max-size", "8192", "--port"),
    ),
    "sample_app": ("-m", "sample_app", "--no-simulate", "--workers", "2", "--port"),
}


def test_sample_app_workers_want_a_shared_bus(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in list(os.environ):
        if name.startswith("ADMINSTATS_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ADMINSTATS_JWT_SECRET", SECRET)
    assert main(["--workers", "2", "--port", str(services.free_port())]) == 2
    assert "ADMINSTATS_BROADCAST_URL" in capsys.readouterr().err


@contextlib.asynccontextmanager
async def workers(
    tmp_path: Path, port: int, command: str
) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'game.db'}",  # fresh: both workers prepare it
        PORT=str(port),
        ADMINSTATS_JWT_SECRET=SECRET,
        ADMINSTATS_BROADCAST_URL=services.REDIS_URL,
        ADMINSTATS_CHANNEL_PREFIX=f"workers_{uuid.uuid4().hex[:8]}",
        ADMINSTATS_STATS_INTERVAL="1",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *COMMANDS[command],
        str(port),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
        await asyncio.wait_for(proc.wait(), 20)


async def _started_workers(proc: asyncio.subprocess.Process) -> set[str]:
    """The worker pids uvicorn reports, once both finished their start-up."""
    assert proc.stderr is not None
    pids: set[str] = set()
    started = 0
    async with asyncio.timeout(30):
        while started < 2:
            line = (await proc.stderr.readline()).decode()
            assert line, "uvicorn exited during start-up"
            if found := re.search(r"Started server process \[(\d+)\]", line):
                pids.add(found.group(1))
            started += "Application startup complete" in line
    return pids


async def _drain(proc: asyncio.subprocess.Process) -> None:
    assert proc.stderr is not None
    while await proc.stderr.readline():  # the workers' log: a full pipe would stop them
        pass


@pytest.mark.once  # real worker processes: the README's command runs it
@pytest.mark.parametrize("command", sorted(COMMANDS))
async def test_two_workers_on_redis_serve_every_client_every_push(
    tmp_path: Path, command: str
) -> None:
    services.require("redis")
    port = services.free_port()
    async with workers(tmp_path, port, command) as proc:
        assert len(await _started_workers(proc)) == 2  # both prepared the same database
        draining = asyncio.create_task(_drain(proc))
        admin = mint_token(SECRET, sub="mod-1")
        origin = f"http://127.0.0.1:{port}"
        url = f"ws://127.0.0.1:{port}/admin/ws"
        async with contextlib.AsyncExitStack() as stack:
            sockets = [
                await stack.enter_async_context(client(url, tok=admin, origin=origin))
                for _ in range(CLIENTS)
            ]
            for ws in sockets:
                assert (await recv(ws))["type"] == "connected"
                # The one producer's tick, through Redis, reaches each worker's clients.
                await recv_type(ws, "stats_update", timeout=10)
                await recv_type(ws, "stats_update", timeout=10)
            async with httpx2.AsyncClient(base_url=origin) as http:
                response = await http.post(
                    "/admin/api/players/7/ban", headers={"Authorization": f"Bearer {admin}"}
                )
            assert response.status_code == 200
            pushed = [(await recv_type(ws, "audit_action", timeout=10))["data"] for ws in sockets]
            # SIGTERM to the supervisor reaches every worker, whose component closes its own
            # clients before the server would (uvicorn's 1012).
            proc.send_signal(signal.SIGTERM)
            closes = [await closed(ws, timeout=10) for ws in sockets]
        assert pushed == [response.json()] * CLIENTS
        assert closes == [(1001, "going away")] * CLIENTS
        await asyncio.wait_for(proc.wait(), 20)
        draining.cancel()
