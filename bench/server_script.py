"""A server in its own process, whose RSS bench/unauth_cost.py and tests/test_server.py read.

    python bench/server_script.py --port P --db PATH [--server CONFIG]

CONFIG: recommended (the default), defaults, wsproto, websockets or hypercorn.

``recommended`` serves through ``asgi_adminstats.server.run`` (the hardened protocol,
``ws_max_size`` from the settings, proxy headers off, ``listening_socket``); defaults,
wsproto and websockets are ``uvicorn.Config(app, host, port)`` with uvicorn's plain
defaults (and that ``--ws``); hypercorn is hypercorn with its defaults.
Settings come from ``ADMINSTATS_*`` variables (``ADMINSTATS_JWT_SECRET`` at least).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import uvicorn
from servers import die_with_parent  # python puts bench/ first on sys.path
from starlette.applications import Starlette
from starlette.routing import Mount

from asgi_adminstats import AdminStats, Settings
from asgi_adminstats.server import run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # for support/

from support.demo_db import prepare_database

CONFIGS = ("recommended", "defaults", "wsproto", "websockets", "hypercorn")


def main() -> None:
    die_with_parent()
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--server", choices=CONFIGS, default="recommended")
    args = parser.parse_args()
    settings = Settings.from_env(database_url=f"sqlite:///{args.db}")
    asyncio.run(prepare_database(settings.database_url))
    stats = AdminStats(settings)
    app = Starlette(routes=[Mount("/admin/ws", app=stats)], lifespan=stats.lifespan)
    if args.server == "recommended":
        run(app, settings, port=args.port, log_level="warning")
        return
    if args.server == "hypercorn":
        # Here only: the tests run this script without the `hosts` group (no hypercorn).
        import hypercorn.asyncio
        import hypercorn.config

        hypercorn_config = hypercorn.config.Config()
        hypercorn_config.bind = [f"127.0.0.1:{args.port}"]
        asyncio.run(hypercorn.asyncio.serve(app, hypercorn_config))  # type: ignore[arg-type]
        return
    ws = "auto" if args.server == "defaults" else args.server
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, ws=ws, log_level="warning")
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
