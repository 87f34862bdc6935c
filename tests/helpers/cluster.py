"""A harness for cluster tests: real ``python -m sample_app`` processes on one bus.

Each :class:`Instance` is a uvicorn process of the sample app (no simulated traffic),
configured only through its environment, logging to a file under ``tmp_path``.
:func:`cluster` starts ``n`` of them on Redis (with a shared SQLite file) or on one
fresh PostgreSQL database (the stats database and the bus), and always kills them at
the end. Every wait here is bounded by a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import IO, Any

import httpx2
import pytest
from websockets.asyncio.client import ClientConnection

from asgi_adminstats import mint_token

from helpers import services
from support.loopback import client

__all__ = [
    "BACKENDS",
    "ROOT",
    "SECRET",
    "Cluster",
    "Instance",
    "RedisServer",
    "cluster",
    "free_port",
    "init_db",
    "instance_client",
    "poll",
    "recv_raw",
    "token",
]

ROOT = Path(__file__).resolve().parents[2]
#: Shared by every instance of every cluster: tokens minted with it work anywhere.
SECRET = "cluster-test-secret-0123456789abcdefghij"
assert len(SECRET) == 40
BACKENDS = ("redis", "postgres")
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A port free on 127.0.0.1 right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def token(sub: str = "cluster-admin") -> str:
    return mint_token(SECRET, sub=sub)


# Loading the CA bundle costs 20-40 ms per client, which would dominate the latencies
# measured around these requests: load it once (the requests are plain http:// anyway).
_TLS = ssl.create_default_context()


def _http(timeout: float) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(timeout=timeout, verify=_TLS)


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        return f"({path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


async def poll(
    check: Callable[[], Awaitable[Any]],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "condition",
    context: Callable[[], str] = lambda: "",
) -> Any:
    """Call ``check`` until it returns something truthy; that value (bounded in time)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Any = None
    for _ in range(int(timeout / interval) + 2):
        last = await check()
        if last:
            return last
        if loop.time() >= deadline:
            break
        await asyncio.sleep(interval)
    raise AssertionError(f"{what} not met in {timeout:g} s (last: {last!r})\n{context()}")


class Instance:
    """One ``python -m sample_app --no-simulate --port P`` process."""

    def __init__(self, name: str, env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.port = free_port()
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/admin/ws"

    def start(self) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in _reap
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sample_app", "--no-simulate", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def tail(self, lines: int = 40) -> str:
        return f"--- {self.name} (port {self.port}) log tail ---\n{_tail(self.log_path, lines)}"

    async def ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Poll ``GET /admin/ws/health`` until 200 (the lifespan has completed)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with _http(1.0) as http:
            for _ in range(int(timeout / 0.05) + 2):
                if self.proc is None or self.proc.poll() is not None:
                    code = None if self.proc is None else self.proc.returncode
                    raise AssertionError(f"{self.name} exited ({code}) during start\n{self.tail()}")
                with contextlib.suppress(httpx2.HTTPError):
                    response = await http.get(f"{self.base_url}/admin/ws/health")
                    if response.status_code == 200:
                        return
                if loop.time() >= deadline:
                    break
                await asyncio.sleep(0.05)
        raise AssertionError(f"{self.name} not ready in {timeout:g} s\n{self.tail()}")

    async def health(self) -> dict[str, Any]:
        async with _http(2.0) as http:
            response = await http.get(f"{self.base_url}/admin/ws/health")
        assert response.status_code == 200, (response.status_code, response.text)
        data: dict[str, Any] = response.json()
        return data

    async def ban(self, player_id: int, *, sub: str = "cluster-admin") -> dict[str, Any]:
        """``POST /admin/api/players/{id}/ban`` (which calls ``record_action``)."""
        async with _http(5.0) as http:
            response = await http.post(
                f"{self.base_url}/admin/api/players/{player_id}/ban",
                headers={"Authorization": f"Bearer {token(sub)}"},
            )
        assert response.status_code == 200, (response.status_code, response.text, self.tail())
        data: dict[str, Any] = response.json()
        return data

    def kill(self) -> None:
        """SIGKILL: a crash (no lease release, no goodbye)."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
        self._reap(STOP_TIMEOUT)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM and wait (bounded); SIGKILL if it does not exit in time."""
        if self.running:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._reap(STOP_TIMEOUT)

    def _reap(self, timeout: float) -> None:
        if self.proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
    env.pop("DATABASE_URL", None)
    env["PYTHONUNBUFFERED"] = "1"
    return env


async def init_db(database_url: str, prefix: str, *, timeout: float = 30.0) -> str:
    """``python -m asgi_adminstats init-db --default-schema``: tables and the trigger."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "asgi_adminstats",
        "init-db",
        "--database-url",
        database_url,
        "--prefix",
        prefix,
        "--default-schema",
        cwd=ROOT,
        env=_base_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    text = out.decode(errors="replace")
    assert proc.returncode == 0, f"init-db exited {proc.returncode}: {text}"
    return text


class Cluster:
    """Instances sharing one bus and one database, apart from others by ``prefix``."""

    def __init__(
        self,
        backend: str,
        tmp_path: Path,
        *,
        bus_url: str,
        database_url: str,
        stats_interval: float,
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.backend = backend
        self.tmp_path = tmp_path
        self.prefix = "c" + uuid.uuid4().hex[:10]
        self.bus_url = bus_url
        self.database_url = database_url
        self.stats_interval = stats_interval
        self.extra_env = dict(extra_env or {})
        self.instances: list[Instance] = []

    def __getitem__(self, index: int) -> Instance:
        return self.instances[index]

    def __len__(self) -> int:
        return len(self.instances)

    def bus_application_name(self, instance: Instance) -> str:
        """What the instance's PostgreSQL LISTEN connection shows in pg_stat_activity."""
        return f"{self.prefix}-bus:{instance.name}"[:63]

    def _new_instance(self) -> Instance:
        name = f"node{len(self.instances) + 1}"
        env = _base_env()
        env.update(
            {
                "ADMINSTATS_JWT_SECRET": SECRET,
                "ADMINSTATS_BROADCAST_URL": self.bus_url,
                "DATABASE_URL": self.database_url,
                "ADMINSTATS_INSTANCE_NAME": name,
                "ADMINSTATS_CHANNEL_PREFIX": self.prefix,
                "ADMINSTATS_STATS_INTERVAL": str(self.stats_interval),
                **self.extra_env,
            }
        )
        instance = Instance(name, env, self.tmp_path / f"{self.prefix}-{name}.log")
        self.instances.append(instance)
        return instance

    async def add(self, n: int = 1) -> list[Instance]:
        """Start ``n`` more instances together and wait until each answers."""
        started = [self._new_instance() for _ in range(n)]
        for instance in started:
            instance.start()
        await asyncio.gather(*(instance.ready() for instance in started))
        return started

    def running(self) -> list[Instance]:
        return [i for i in self.instances if i.running]

    def diagnose(self) -> str:
        return "\n".join(instance.tail() for instance in self.instances)

    async def healths(self, instances: list[Instance] | None = None) -> list[dict[str, Any]]:
        return list(await asyncio.gather(*(i.health() for i in (instances or self.running()))))

    async def settled(self, timeout: float = 10.0) -> str:
        """Wait until the running instances agree: bus up, one producer, its snapshots
        seen everywhere. Returns the producer's instance name."""

        async def check() -> str | None:
            healths = await self.healths()
            leaders = [h["instance"] for h in healths if h["producer"]["leading"]]
            if len(leaders) != 1 or any(h["bus"]["status"] != "up" for h in healths):
                return None
            if any(h["producer"]["lastSeen"] != leaders[0] for h in healths):
                return None
            leader: str = leaders[0]
            return leader

        name: str = await poll(
            check, timeout=timeout, what="cluster settled", context=self.diagnose
        )
        return name

    def kill_all(self) -> None:
        for instance in self.instances:
            instance.kill()


@contextlib.asynccontextmanager
async def _engine(
    backend: str, tmp_path: Path, bus_url: str | None
) -> AsyncIterator[tuple[str, str]]:
    """(bus URL, database URL) for ``backend``; ``bus_url`` replaces the shared bus."""
    if backend == "redis":
        if bus_url is None:
            services.require("redis")
        yield bus_url or services.REDIS_URL, f"sqlite:///{tmp_path / 'cluster.db'}"
    elif backend == "postgres":
        services.require("postgresql")
        async with services.fresh_postgres_database() as url:
            yield bus_url or url, url
    else:
        raise ValueError(f"backend {backend!r}: one of {BACKENDS}")


@contextlib.asynccontextmanager
async def cluster(
    n: int,
    *,
    backend: str,
    tmp_path: Path,
    stats_interval: float = 0.5,
    bus_url: str | None = None,
    trigger: bool = False,
    settle: bool = True,
    backoff: tuple[float, float] | None = None,
    extra_env: dict[str, str] | None = None,
) -> AsyncIterator[Cluster]:
    """``n`` sample-app instances on ``backend``; all killed on the way out.

    ``bus_url`` replaces the engine's bus (e.g. a dedicated redis-server); ``trigger``
    installs the PostgreSQL audit trigger with ``init-db`` before any instance starts;
    ``backoff`` sets ADMINSTATS_BUS_BACKOFF_INITIAL / _MAX.
    """
    env = dict(extra_env or {})
    if backoff is not None:
        env["ADMINSTATS_BUS_BACKOFF_INITIAL"] = str(backoff[0])
        env["ADMINSTATS_BUS_BACKOFF_MAX"] = str(backoff[1])
    async with _engine(backend, tmp_path, bus_url) as (bus, database_url):
        c = Cluster(
            backend,
            tmp_path,
            bus_url=bus,
            database_url=database_url,
            stats_interval=stats_interval,
            extra_env=env,
        )
        try:
            if trigger:
                await init_db(database_url, c.prefix)
            # The first instance seeds the database; the others start after it.
            await c.add(1)
            if n > 1:
                await c.add(n - 1)
            if settle:
                await c.settled()
            yield c
        finally:
            c.kill_all()


@contextlib.asynccontextmanager
async def instance_client(
    instance: Instance, sub: str = "viewer"
) -> AsyncIterator[ClientConnection]:
    """An authenticated admin client on ``instance``; returns after ``connected``."""
    async with client(instance.ws_url, tok=token(sub), origin=None) as ws:
        first = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert first["type"] == "connected", first
        yield ws


async def recv_raw(ws: ClientConnection, timeout: float) -> tuple[float, str, dict[str, Any]]:
    """(receipt time on the loop clock, the frame's text, the decoded message)."""
    raw = await asyncio.wait_for(ws.recv(), timeout)
    assert isinstance(raw, str)
    return asyncio.get_running_loop().time(), raw, json.loads(raw)


class RedisServer:
    """A dedicated ``redis-server`` on a free port: ours to kill and restart."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.dir = tmp_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = tmp_path / f"redis-{self.port}.log"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _ping(self) -> bool:
        with (
            contextlib.suppress(OSError),
            socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
        ):
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
        return False

    def _spawn(self) -> None:
        if shutil.which("redis-server") is None:
            pytest.skip("redis-server is not on PATH: install Redis (e.g. apt-get install redis)")
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--logfile",
                str(self.log_path),
            ],
            cwd=self.dir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    async def start(self, timeout: float = 10.0) -> None:
        """Start (or restart, on the same port) and wait until it answers PING."""
        self._spawn()
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        for _ in range(int(timeout / 0.05) + 2):
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"redis-server exited ({self.proc.returncode}): {_tail(self.log_path)}"
                )
            if await asyncio.to_thread(self._ping):
                return
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"redis-server not up in {timeout:g} s: {_tail(self.log_path)}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(STOP_TIMEOUT)
