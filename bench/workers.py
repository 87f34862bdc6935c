"""``python bench/servers.py --kind adminstats --workers K [--reuse-port]``: uvicorn's own
worker processes, or (``--reuse-port``) ``asgi_adminstats.server.run(..., workers=K)``'s.

``uvicorn.run`` with ``workers=K`` wants an import string: the parent (bench/servers.py)
puts its parsed arguments in ``BENCH_WORKER_ARGS`` (JSON) and runs ``workers:create``
as a factory; uvicorn binds the listening socket once and spawns K processes that each
accept on it (the kernel picks which one gets a connection). Each worker is a full
AdminStats instance on the same bus (``--setting broadcast_url=redis://...``) with an
instance name of its own (``bench-<pid>``, unless ``--setting instance_name=`` says
otherwise); exactly one becomes the producer through the component's lease.

Each worker has its own control channel on a port of its own choosing (port 0), written
to ``<workdir>/control-<pid>.port`` once it listens; ``bench/server_workers.py`` (the
harness side) connects to all of them. ``publish`` to any one is enough: it goes over
the bus to every worker's clients.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["ENV", "create", "run_workers"]

ENV = "BENCH_WORKER_ARGS"
_PATHS = ("snapshot", "workdir")  # Path arguments (JSON carries them as text)


def run_workers(args: argparse.Namespace, options: dict[str, Any], template: str) -> None:
    """In the parent: K worker processes under uvicorn's supervisor, until terminated."""
    import uvicorn

    if args.kind != "adminstats":
        raise SystemExit("--workers: the adminstats kind only")
    if args.snapshot is None:  # made once here: every worker serves the same bytes
        args.snapshot = args.workdir / "snapshot.json"
        args.snapshot.write_text(template)
    values = {k: str(v) if k in _PATHS and v is not None else v for k, v in vars(args).items()}
    os.environ[ENV] = json.dumps(values)
    if args.reuse_port:  # the component's own: a listening socket per worker
        from servers import adminstats_settings

        from asgi_adminstats.server import run

        # The bench's protocol and limits, not the recommended run's: only the way
        # connections reach the workers differs from uvicorn's --workers.
        run(
            "workers:create",
            adminstats_settings(args),
            factory=True,
            workers=args.workers,
            port=args.port,
            log_level="warning",
            ws=options.pop("ws", "auto"),
            ws_max_size=16 * 1024 * 1024,
            user_timeout=None,
            **options,
        )
        return
    uvicorn.run(
        "workers:create",
        factory=True,
        workers=args.workers,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        **options,
    )


def create() -> Any:
    """In each worker (uvicorn calls it): the adminstats Starlette app with its control
    channel on a port of its own."""
    import gc_probe
    from servers import Texts, die_with_parent, starlette_kind

    gc_probe.install()
    die_with_parent()  # the supervisor: SIGTERM if it goes, however it goes
    values = json.loads(os.environ[ENV])
    for key in _PATHS:
        if values.get(key) is not None:
            values[key] = Path(values[key])
    args = argparse.Namespace(**values)
    pid = os.getpid()
    args.control_port = 0
    args.control_file = args.workdir / f"control-{pid}.port"
    if not any(item.startswith("instance_name=") for item in args.setting):
        # Presence reports are per instance name: the workers must not share one.
        args.setting = [*args.setting, f"instance_name=bench-{pid}"]
    return starlette_kind(args.kind, args, Texts(args.snapshot.read_text()))
