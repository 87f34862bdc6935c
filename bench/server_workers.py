"""The harness side of ``bench/servers.py --workers K``: one uvicorn supervisor, K workers.

    async with WorkerServers(2, snapshot=snapshot, extra=(...)) as server:
        await server.count()           # the sum over the workers
        await server.counts()          # per worker (how the kernel spread the clients)
        server.send("publish"); ...    # to one worker: the bus takes it to every worker
        server.cpu_seconds()           # the sum over the workers

Each worker writes its control port to ``<workdir>/control-<pid>.port`` (bench/workers.py);
this connects to all K. The supervisor and its workers share one process group, killed
as a whole on leaving the block (as ServerProcess does).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import psutil
from server_process import Control, ServerProcess

__all__ = ["WorkerServers"]


class WorkerServers(ServerProcess):
    """``ServerProcess`` for ``--workers K``: ``control`` is the first worker's channel,
    ``channels_of_workers`` all K (in the order their ports appeared)."""

    def __init__(self, workers: int, *, snapshot: Path, extra: tuple[str, ...] = ()) -> None:
        if workers < 2:
            raise ValueError("WorkerServers: 2 workers or more (one is ServerProcess)")
        super().__init__("adminstats", snapshot=snapshot, extra=(*extra, "--workers", str(workers)))
        self.workers = workers
        self.channels_of_workers: list[Control] = []
        self.worker_processes: list[psutil.Process] = []
        self.worker_info: list[dict[str, object]] = []

    async def _connect_control(self) -> Control:
        # Called by ServerProcess.__aenter__ within its start-up timeout.
        assert self._proc is not None and self._workdir is not None
        workdir = Path(self._workdir.name)
        while len(found := _ports(workdir)) < self.workers:
            if self._proc.returncode is not None:
                raise RuntimeError(f"uvicorn --workers exited with {self._proc.returncode}")
            await asyncio.sleep(0.05)
        for name, port in found:
            channel = await Control.open(f"adminstats worker {name}", port)
            self.channels_of_workers.append(channel)
            info = json.loads(await channel.command("info"))
            self.worker_info.append(info)
            self.worker_processes.append(psutil.Process(int(info["pid"])))
        self._channels.extend(self.channels_of_workers[1:])  # closed on exit
        return self.channels_of_workers[0]

    async def counts(self) -> list[int]:
        """Clients registered per worker (the kernel's accept spread)."""
        for channel in self.channels_of_workers:
            channel.send("count")
        return [int(await channel.reply()) for channel in self.channels_of_workers]

    async def count(self) -> int:
        return sum(await self.counts())

    def cpu_seconds(self) -> float:
        """utime+stime summed over the workers (the supervisor only pings them)."""
        total = 0.0
        for process in self.worker_processes:
            times = process.cpu_times()
            total += times.user + times.system
        return total

    def rss(self) -> int:
        return sum(int(p.memory_info().rss) for p in self.worker_processes)


def _ports(workdir: Path) -> list[tuple[str, int]]:
    """The workers' control ports written so far (each file is whole: renamed into place)."""
    return [(path.stem, int(path.read_text())) for path in sorted(workdir.glob("control-*.port"))]
