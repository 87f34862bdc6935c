"""A host app written to a file and run by uvicorn in a process of its own, for the tests
that send it a signal (the test process must not get the signal itself)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2

from .cluster import free_port
from support.demo_db import prepare_database
from support.loopback import ORIGIN, SECRET

__all__ = ["HostProcess", "host_process"]


class HostProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.port = port

    async def log(self) -> str:
        """Its stderr, once it has exited."""
        assert self.proc.stderr is not None
        return (await self.proc.stderr.read()).decode()


@contextlib.asynccontextmanager
async def host_process(
    tmp_path: Path, source: str, *uvicorn_args: str, ready: str, **env: str
) -> AsyncIterator[HostProcess]:
    """``source`` as ``host_app.py`` under ``uvicorn host_app:app`` (``-X dev``, INFO
    logs on stderr) with the component's settings in the environment; waits until GET
    ``ready`` answers 200, and kills the process at the end if it still runs."""
    db = tmp_path / "s.db"
    await prepare_database(f"sqlite:///{db}")
    (tmp_path / "host_app.py").write_text(source)
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    environ.update(
        ADMINSTATS_JWT_SECRET=SECRET,
        ADMINSTATS_ALLOWED_ORIGINS=ORIGIN,
        ADMINSTATS_DATABASE_URL=f"sqlite:///{db}",
        PYTHONPATH=os.pathsep.join([str(tmp_path), *sys.path]),
        **env,
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-X", "dev", "-m", "uvicorn", "host_app:app", *uvicorn_args),
        *("--port", str(port), "--log-level", "info"),
        cwd=tmp_path,
        env=environ,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(200):
                with contextlib.suppress(httpx2.TransportError):
                    if (await http.get(ready)).status_code == 200:
                        break
                await asyncio.sleep(0.1)
        yield HostProcess(proc, port)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
