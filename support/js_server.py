"""A real adminstats server for the npm package's React tests (js/test/react.test.mjs).

    python -m support.js_server --origin http://127.0.0.1:5173 --dir /tmp/x

Starlette with AdminStats mounted at ``/admin/ws`` (a SQLite file in ``--dir`` with the
demo rows, a snapshot every 0.5 s) and ``POST /ban``, which records an audit action as a
host's admin view would. Served by :func:`asgi_adminstats.serve` on a free port; once it
listens, one JSON line goes to stdout: ``{"url", "http", "token"}`` (the token is minted
from a secret made for this run and known to nothing else). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from asgi_adminstats import AdminStats, Settings, listening_socket, mint_token
from asgi_adminstats.server import uvicorn_config

from .demo_db import prepare_database

__all__ = ["build_app", "main"]


def build_app(settings: Settings) -> Starlette:
    stats = AdminStats(settings)

    async def ban(request: Request) -> JSONResponse:
        return JSONResponse(await stats.record_action("BAN_PLAYER", "react-test", "PLAYER", 7))

    return Starlette(
        routes=[Route("/ban", ban, methods=["POST"]), Mount("/admin/ws", app=stats)],
        lifespan=stats.lifespan,
    )


async def _serve(origin: str, directory: Path) -> None:
    secret = secrets.token_urlsafe(48)
    settings = Settings(
        jwt_secret=secret,
        database_url=f"sqlite:///{directory / 'stats.db'}",
        allowed_origins=(origin,),
        stats_interval=0.5,
        instance_name="js-test",
    )
    await prepare_database(settings.database_url)
    sock = listening_socket("127.0.0.1", 0)
    port = sock.getsockname()[1]
    config = uvicorn_config(build_app(settings), settings, port=port, log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn exited during start-up")
        await asyncio.sleep(0.02)
    ready = {
        "url": f"ws://127.0.0.1:{port}/admin/ws",
        "http": f"http://127.0.0.1:{port}",
        "token": mint_token(secret, sub="react-test", ttl=600),
    }
    sys.stdout.write(json.dumps(ready) + "\n")
    sys.stdout.flush()
    await task


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--origin", required=True, help="the test page's origin (allowed)")
    parser.add_argument("--dir", required=True, type=Path, help="where the SQLite file goes")
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.origin, args.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
