"""The harness side of bench/servers.py: a server subprocess and its control channel.

    async with snapshot_file() as snapshot:
        async with ServerProcess("adminstats", snapshot=snapshot) as server:
            await server.count()                 # clients registered
            server.send("publish"); ...; await server.reply()
            second = await server.channel()      # another control connection
            await server.metrics()               # adminstats: /admin/ws/metrics, parsed

The server runs in its own session (process group), pinned to CPU 0, and is killed
(the whole group: SIGTERM, then SIGKILL) on leaving the block, whatever happened; it
also gets SIGTERM if this process dies (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import psutil
from servers import PATH, real_snapshot

__all__ = ["Control", "ServerProcess", "free_port", "kill_group", "snapshot_file"]

SERVERS = Path(__file__).resolve().parent / "servers.py"
STARTUP_TIMEOUT = 60.0  # seconds for a server to answer on both ports
CONTROL_TIMEOUT = 60.0  # seconds for a control answer (a sequential publish to 5000)
HTTP_TIMEOUT = 10.0


def free_port() -> int:
    """A free port whose successor is free too (the control port).

    Drawn below the kernel's ephemeral range: the load generator's closed connections
    leave thousands of its ports in TIME_WAIT (which a bind may not reuse), and a port
    the kernel hands out next to them had its neighbour taken often enough that 50
    draws in a row found no pair (a workers run lost a repetition to it).
    """
    low = _ephemeral_low()
    for _ in range(200):
        port = random.randrange(max(1024, low - 12000), low - 1)
        with socket.socket() as a, socket.socket() as b:
            # As the servers bind (SO_REUSEADDR).
            for probe in (a, b):
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two adjacent free ports")


def _ephemeral_low() -> int:
    """The lowest port the kernel gives a client connection (Linux; IANA's 49152 else)."""
    with contextlib.suppress(OSError, ValueError):
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    return 49152


class Control:
    """One connection to a server's control port: commands answered in order."""

    def __init__(self, kind: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.kind = kind
        self._reader, self._writer = reader, writer

    @classmethod
    async def open(cls, kind: str, port: int) -> Control:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        # Before the server listens, a connect to an ephemeral port can get that same
        # port as its source and connect to itself (TCP simultaneous open): it then
        # reads its own commands back ("control port answered 'info' to info").
        if writer.get_extra_info("sockname") == writer.get_extra_info("peername"):
            writer.close()
            raise ConnectionRefusedError(f"{kind}: connected to itself on port {port}")
        return cls(kind, reader, writer)

    def send(self, command: str) -> None:
        """Write a command without waiting for its answer (read it with ``reply``)."""
        self._writer.write(command.encode() + b"\n")

    async def reply(self) -> str:
        line = await asyncio.wait_for(self._reader.readline(), CONTROL_TIMEOUT)
        if not line:
            raise RuntimeError(f"{self.kind} server closed its control channel")
        return line.decode().strip()

    async def command(self, command: str) -> str:
        self.send(command)
        return await self.reply()

    async def ok(self) -> None:
        """The next answer must be ``ok``."""
        if (answer := await self.reply()) != "ok":
            raise RuntimeError(f"{self.kind}: control answered {answer!r}")

    def close(self) -> None:
        self._writer.close()


# --- harness side: a server subprocess and its control channel ---------------------


class ServerProcess:
    """``async with ServerProcess(kind, snapshot=...) as server``: started, answering
    control commands; killed (its whole process group) on exit, whatever happened."""

    def __init__(self, kind: str, *, snapshot: Path, extra: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self.port = free_port()
        self._args = [
            str(SERVERS),
            *("--kind", kind, "--port", str(self.port), "--snapshot", str(snapshot)),
            *extra,
        ]
        self._proc: asyncio.subprocess.Process | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None
        self._control: Control | None = None
        self._channels: list[Control] = []
        self.info: dict[str, Any] = {}
        self.process: psutil.Process | None = None

    async def __aenter__(self) -> ServerProcess:
        self._workdir = tempfile.TemporaryDirectory(prefix="fanout-")
        try:
            # Its own session: the kill below reaches the server and anything it spawned.
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable, *self._args, "--workdir", self._workdir.name, start_new_session=True
            )
            async with asyncio.timeout(STARTUP_TIMEOUT):
                self._control = await self._connect_control()
                answer = await self.command("info")
                try:
                    self.info = json.loads(answer)
                except ValueError:
                    raise RuntimeError(f"control port answered {answer[:80]!r} to info") from None
                self.process = psutil.Process(int(self.info["pid"]))
                await _wait_listening(self.port)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            for channel in [*self._channels, *([self._control] if self._control else [])]:
                channel.close()
            if self._proc is not None:
                await kill_group(self._proc)
        finally:
            if self._workdir is not None:
                self._workdir.cleanup()

    async def _connect_control(self) -> Control:
        assert self._proc is not None
        while True:  # bounded by the caller's timeout
            if self._proc.returncode is not None:
                raise RuntimeError(f"{self.kind} server exited with {self._proc.returncode}")
            try:
                return await Control.open(self.kind, self.port + 1)
            except OSError:
                await asyncio.sleep(0.05)

    async def channel(self) -> Control:
        """Another control connection (commands on it are answered independently)."""
        channel = await asyncio.wait_for(Control.open(self.kind, self.port + 1), CONTROL_TIMEOUT)
        self._channels.append(channel)
        return channel

    @property
    def control(self) -> Control:
        assert self._control is not None
        return self._control

    def send(self, command: str) -> None:
        """Write a command without waiting for its answer (read it with ``reply``)."""
        self.control.send(command)

    async def reply(self) -> str:
        return await self.control.reply()

    async def command(self, command: str) -> str:
        return await self.control.command(command)

    async def count(self) -> int:
        return int(await self.command("count"))

    def cpu_seconds(self) -> float:
        assert self.process is not None
        times = self.process.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        assert self.process is not None
        return int(self.process.memory_info().rss)

    async def metrics(self) -> dict[str, float]:
        """adminstats' ``<mount>/metrics`` (Prometheus text) as ``{"name{labels}": value}``."""
        async with asyncio.timeout(HTTP_TIMEOUT):
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            try:
                request = f"GET {PATH}/metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                writer.write((request + "Connection: close\r\n\r\n").encode())
                response = await reader.read()
            finally:
                writer.close()
        head, _, body = response.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"metrics: {head[:60]!r}")
        if b"transfer-encoding: chunked" in head.lower():
            body = _unchunk(body)
        found = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                found[name] = float(value)
        return found


def _unchunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while (eol := body.find(b"\r\n", pos)) >= 0:
        size = int(body[pos:eol].split(b";")[0], 16)
        if size == 0:
            break
        out += body[eol + 2 : eol + 2 + size]
        pos = eol + 2 + size + 2
    return bytes(out)


async def _wait_listening(port: int) -> None:
    while True:  # bounded by the caller's timeout
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            if writer.get_extra_info("sockname") != writer.get_extra_info("peername"):
                return  # not a connection to itself (see Control.open)
        await asyncio.sleep(0.05)


async def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGTERM first (uvicorn shuts down cleanly), SIGKILL if it lingers; the whole group."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(proc.wait(), 5)


@contextlib.asynccontextmanager
async def snapshot_file() -> AsyncIterator[Path]:
    """The real snapshot, written once for every server of a run (identical bytes)."""
    with tempfile.TemporaryDirectory(prefix="fanout-snapshot-") as tmp:
        path = Path(tmp) / "snapshot.json"
        path.write_text(await real_snapshot(Path(tmp)))
        yield path
