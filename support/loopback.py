"""Settings, tokens, a real uvicorn server on a free loopback port, real clients."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Origin

from asgi_adminstats import AdminStats, Settings, mint_token

__all__ = [
    "ORIGIN",
    "SECRET",
    "client",
    "closed",
    "make_settings",
    "recv",
    "recv_type",
    "serve",
    "starlette_host",
    "token",
]

SECRET = "test-secret-" + "x" * 32
ORIGIN = Origin("http://dashboard.example.com")  # typed: what websockets.connect() takes


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "database_url": f"sqlite:///{tmp_path / 'stats.db'}",
        "allowed_origins": (ORIGIN,),
        "instance_name": "test-1",
    }
    values.update(overrides)
    return Settings(**values)


def token(sub: str = "alice", **kwargs: Any) -> str:
    return mint_token(SECRET, sub=sub, **kwargs)


@contextlib.asynccontextmanager
async def serve(app: Any, **config: Any) -> AsyncIterator[str]:
    """Run ``app`` under uvicorn on 127.0.0.1 and a free port; yields ``host:port``."""
    cfg = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **config)
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited during start-up")
        assert server.started, "uvicorn did not start in 5 s"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def client(
    url: str, *, tok: str | None = None, origin: str | None = ORIGIN, **kwargs: Any
) -> AsyncIterator[ClientConnection]:
    headers = kwargs.pop("additional_headers", {})
    if tok is not None:
        headers["Authorization"] = f"Bearer {tok}"
    async with connect(
        url,
        additional_headers=headers,
        origin=origin,  # type: ignore[arg-type]
        open_timeout=5,
        **kwargs,
    ) as ws:
        yield ws


async def recv(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), timeout))  # type: ignore[no-any-return]


async def recv_type(ws: ClientConnection, type_: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next message of ``type_``, skipping others (bounded by ``timeout``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        message = await recv(ws, max(0.01, deadline - loop.time()))
        if message["type"] == type_:
            return message


async def closed(ws: ClientConnection, timeout: float = 5.0) -> tuple[int, str]:
    """Read until the server closes; the close code and reason."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout):
            async for _ in ws:
                pass
    assert ws.close_code is not None, "the server did not close the connection"
    return ws.close_code, ws.close_reason or ""


def starlette_host(stats: AdminStats) -> Starlette:
    return Starlette(routes=[Mount("/admin/ws", app=stats)], lifespan=stats.lifespan)
