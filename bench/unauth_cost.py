"""What a client without a token can cost the server: the recommended run vs plain servers.

    python bench/unauth_cost.py          # about 6 minutes: bench/results/unauth_cost.*
    python bench/unauth_cost.py --smoke  # a few seconds of each; prints only (unless --out)

Servers: ``bench/server_script.py`` in its own process on 127.0.0.1, ``recommended``
(``asgi_adminstats.server.run``: the hardened WebSocket protocol, ``ws_max_size`` from
``max_message_bytes``, proxy headers off, ``listening_socket``), ``defaults``
(``uvicorn.Config(app, host, port)``), and ``wsproto`` and ``websockets`` (the same
with that ``--ws``; full runs only, or ``--configs``), and ``hypercorn`` with its
defaults. Every measurement gets a fresh
server. Clients are raw sockets writing frames by hand, loopback only, every loop
bounded:

- ``ping flood``: one socket pings (125-byte payloads) for 15 s (smoke: 2 s) and never
  reads, without a token, then one with a valid admin token: the server's RSS growth
  (peak, and 1 s after the client left), its CPU share during the flood, and how many
  MiB of pings it took in;
- ``deflate bombs``: 20 sockets at once (smoke: 3), no token, each sends one text frame
  compressed with permessage-deflate that inflates to 15 MiB: RSS growth, close codes;
- ``held``: a socket that upgrades and sends nothing: seconds until the server's close
  frame (``auth_timeout``) and until it drops the TCP connection (the client never
  answers the close);
- ``slots``: token-less sockets held at once, from one address and from many
  (``max_pending_per_client``, ``max_pending``): recommended run only (the component's
  budget, the same under any server).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import importlib.metadata
import json
import os
import platform
import secrets
import socket
import struct
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil

from asgi_adminstats import Settings, mint_token

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for support/

from support.rss import peak_rss  # noqa: E402

SCRIPT = ROOT / "bench" / "server_script.py"
RESULTS = ROOT / "bench" / "results" / "unauth_cost"
ORIGIN = "http://bench.example.com"
MIB = 1 << 20
CONFIGS = ("recommended", "defaults", "wsproto", "websockets", "hypercorn")
HEADINGS = {
    "recommended": "recommended run",
    "defaults": "uvicorn plain defaults",
    "wsproto": "uvicorn --ws wsproto",
    "websockets": "uvicorn --ws websockets",
    "hypercorn": "hypercorn defaults",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def frame(opcode: int, payload: bytes, *, rsv1: bool = False) -> bytes:
    head = bytes([0x80 | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 1 << 16:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    mask = os.urandom(4)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def bomb(size: int) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -12)
    data = compressor.compress(b" " * size) + compressor.flush(zlib.Z_SYNC_FLUSH)
    return frame(0x1, data[:-4], rsv1=True)


class Raw:
    """A hand-written WebSocket client on a plain socket; reads only when told to."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    @classmethod
    async def upgrade(
        cls, port: int, headers: dict[str, str], source: str = "127.0.0.1"
    ) -> tuple[Raw, bytes]:
        loop = asyncio.get_running_loop()
        sock = socket.socket()
        sock.setblocking(False)
        sock.bind((source, 0))
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            "GET /admin/ws HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            f"Origin: {ORIGIN}",
            *(f"{k}: {v}" for k, v in headers.items()),
        ]
        await asyncio.wait_for(
            loop.sock_sendall(sock, ("\r\n".join(lines) + "\r\n\r\n").encode()), 5
        )
        head = b""
        async with asyncio.timeout(5):
            while b"\r\n\r\n" not in head:
                chunk = await loop.sock_recv(sock, 1)
                if not chunk:
                    break
                head += chunk
        return cls(sock), head

    async def read_until_eof(
        self, limit: float, *, until_close: bool = False
    ) -> tuple[bytes, float | None, float | None]:
        """(bytes, seconds to the first byte, seconds to EOF) within ``limit`` seconds;
        ``until_close``: stop at the first close frame."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        data = b""
        first = None
        while (left := started + limit - loop.time()) > 0:
            try:
                chunk = await asyncio.wait_for(loop.sock_recv(self.sock, 65536), left)
            except TimeoutError:
                break
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                return data, first, loop.time() - started
            if first is None:
                first = loop.time() - started
            data += chunk
            if until_close and close_code(data) is not None:
                break
        return data, first, None

    def close(self) -> None:
        self.sock.close()


def close_code(data: bytes) -> int | None:
    """The code of the last close frame in a server's bytes, if any."""
    at, code = 0, None
    for _ in range(len(data)):
        if at + 2 > len(data):
            break
        opcode, n = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if n == 126:
            n = struct.unpack("!H", data[at : at + 2])[0]
            at += 2
        elif n == 127:
            n = struct.unpack("!Q", data[at : at + 8])[0]
            at += 8
        if opcode == 0x8 and at + 2 <= len(data):
            code = int.from_bytes(data[at : at + 2], "big")
        at += n
    return code


class Server:
    def __init__(self, config: str, secret: str, tmp: Path, env: dict[str, str]) -> None:
        self.config, self.secret, self.tmp, self.env = config, secret, tmp, env
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None
        self.ps: psutil.Process | None = None

    async def __aenter__(self) -> Server:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("ADMINSTATS_")}
        environ.update(
            ADMINSTATS_JWT_SECRET=self.secret,
            ADMINSTATS_ALLOWED_ORIGINS=ORIGIN,
            ADMINSTATS_INSTANCE_NAME="bench",
            **self.env,
        )
        db = self.tmp / f"{self.config}-{self.port}.db"
        args = ["--port", str(self.port), "--db", str(db), "--server", self.config]
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), *args, env=environ, stderr=asyncio.subprocess.DEVNULL
        )
        for _ in range(300):  # 30 s
            if self.proc.returncode is not None:
                raise RuntimeError(f"{self.config} server exited during start-up")
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                break
            await asyncio.sleep(0.1)
        self.ps = psutil.Process(self.proc.pid)
        # Warm up the handshake and auth paths, so the baseline includes them.
        raw, _ = await Raw.upgrade(self.port, {"Authorization": f"Bearer {self.token()}"})
        await raw.read_until_eof(0.5)
        raw.close()
        await asyncio.sleep(1.0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()

    @classmethod
    def factory(cls, secret: str, tmp: Path, env: dict[str, str]) -> Callable[[str], Server]:
        return lambda config: cls(config, secret, tmp, env)

    def token(self, sub: str = "bench-admin") -> str:
        return mint_token(self.secret, sub=sub, ttl=3600)

    def rss(self) -> int:
        assert self.ps is not None
        return int(self.ps.memory_info().rss)

    def cpu(self) -> float:
        assert self.ps is not None
        times = self.ps.cpu_times()
        return float(times.user + times.system)


async def ping_flood(server: Server, seconds: float, *, authenticated: bool) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {server.token('flooder')}"} if authenticated else {}
    raw, head = await Raw.upgrade(server.port, headers)
    assert head.startswith(b"HTTP/1.1 101"), head
    chunk = b"".join(frame(0x9, os.urandom(125)) for _ in range(500))
    loop = asyncio.get_running_loop()
    sent = 0
    async with peak_rss(server.rss) as rss:
        cpu0, started = server.cpu(), loop.time()
        deadline = started + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(loop.sock_sendall(raw.sock, chunk), left)
            except (TimeoutError, OSError):
                break
            sent += len(chunk)
        await asyncio.sleep(max(0.0, deadline - loop.time()))
        cpu_share = (server.cpu() - cpu0) / (loop.time() - started)
        raw.close()
        await asyncio.sleep(1.0)
    return {
        "seconds": seconds,
        "pings_taken_mib": round(sent / MIB, 1),
        "rss_growth_peak_mib": round((rss.peak - rss.baseline) / MIB, 1),
        "rss_growth_after_mib": round((server.rss() - rss.baseline) / MIB, 1),
        "cpu_share": round(cpu_share, 3),
    }


async def deflate_bombs(server: Server, count: int) -> dict[str, Any]:
    payload = bomb(15 * MIB)
    offer = {"Sec-WebSocket-Extensions": "permessage-deflate; client_max_window_bits"}

    async def one(i: int) -> int | None:
        # One source address each: the attempt limit and pending budgets stay out of it.
        raw, head = await Raw.upgrade(server.port, offer, source=f"127.0.1.{i + 1}")
        try:
            if not head.startswith(b"HTTP/1.1 101") or b"permessage-deflate" not in head:
                return None
            loop = asyncio.get_running_loop()
            await asyncio.wait_for(loop.sock_sendall(raw.sock, payload), 10)
            data, _, _ = await raw.read_until_eof(10, until_close=True)
            return close_code(data)
        finally:
            raw.close()

    async with peak_rss(server.rss) as rss:
        codes = await asyncio.gather(*(one(i) for i in range(count)))
        await asyncio.sleep(1.0)
    return {
        "bombs": count,
        "inflated_mib_each": 15,
        "compressed_bytes_each": len(payload),
        "close_codes": sorted({str(c) for c in codes}),
        "rss_growth_peak_mib": round((rss.peak - rss.baseline) / MIB, 1),
        "rss_growth_after_mib": round((server.rss() - rss.baseline) / MIB, 1),
    }


async def held(server: Server, limit: float) -> dict[str, Any]:
    raw, head = await Raw.upgrade(server.port, {})
    assert head.startswith(b"HTTP/1.1 101"), head
    try:
        data, first, eof = await raw.read_until_eof(limit)
    finally:
        raw.close()
    return {
        "close_frame_after_s": None if first is None else round(first, 2),
        "close_code": close_code(data),
        "tcp_dropped_after_s": None if eof is None else round(eof, 2),
    }


async def slots(server: Server, per_address: int, total: int) -> dict[str, Any]:
    """Token-less sockets opened at once; how each one stands 0.3 s later."""

    async def hold(sources: list[str]) -> dict[str, int]:
        async def one(source: str) -> tuple[str, Raw | None]:
            try:
                raw, head = await Raw.upgrade(server.port, {}, source=source)
            except (OSError, TimeoutError) as exc:
                return type(exc).__name__, None
            if head.startswith(b"HTTP/1.1 101"):
                return "held", raw
            raw.close()
            return head.split(b"\r\n")[0].decode(errors="replace"), None

        outcomes = await asyncio.gather(*(one(s) for s in sources))
        counts: dict[str, int] = {}
        try:
            await asyncio.sleep(0.3)  # a refusal after the upgrade is a close frame
            # All at once: one after the other, the last ones would meet auth_timeout.
            reads = await asyncio.gather(
                *(raw.read_until_eof(0.05) for _, raw in outcomes if raw is not None)
            )
            answers = iter(reads)
            for outcome, raw in outcomes:
                if raw is not None and (data := next(answers)[0]):
                    outcome = f"closed {close_code(data)}"
                counts[outcome] = counts.get(outcome, 0) + 1
        finally:
            for _, raw in outcomes:
                if raw is not None:
                    raw.close()
        return dict(sorted(counts.items()))

    one = await hold(["127.0.3.1"] * per_address)
    await asyncio.sleep(0.5)
    many = await hold([f"127.0.{4 + i // 250}.{1 + i % 250}" for i in range(total)])
    return {"one_address": {"tried": per_address, **one}, "all_addresses": {"tried": total, **many}}


async def measure_config(
    config: str, args: argparse.Namespace, make: Callable[[str], Server]
) -> dict[str, Any]:
    flood_s = 2.0 if args.smoke else 15.0
    bombs = 3 if args.smoke else 20
    held_s = 2.0 if args.smoke else 30.0
    variants = ("no token",) if args.smoke else ("no token", "admin token")
    row: dict[str, Any] = {}
    async with contextlib.AsyncExitStack() as stack:
        current: list[Server] = []

        async def server() -> Server:
            # The smoke run measures on one server per configuration; the full run starts
            # a fresh one each time, so one's leftovers are not the next one's baseline.
            if args.smoke and current:
                return current[0]
            await stack.aclose()
            current[:] = [await stack.enter_async_context(make(config))]
            return current[0]

        for variant in variants:
            row[f"ping flood, {variant}"] = await ping_flood(
                await server(), flood_s, authenticated=variant == "admin token"
            )
        row["deflate bombs"] = await deflate_bombs(await server(), bombs)
        row["held"] = await held(await server(), held_s)
    return row


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    secret = secrets.token_urlsafe(32)
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"unauth-cost-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"ADMINSTATS_AUTH_TIMEOUT": "1"} if args.smoke else {}
    results: dict[str, Any] = {}
    for config in args.configs:
        results[config] = await measure_config(config, args, Server.factory(secret, tmp, env))
        print(config, json.dumps(results[config]), flush=True)
    defaults = Settings(jwt_secret="x" * 32)
    budget = {
        name: getattr(defaults, name)
        for name in ("auth_timeout", "max_pending", "max_pending_per_client", "max_message_bytes")
        if hasattr(defaults, name)
    }
    if "max_pending" in budget and "recommended" in results:
        async with Server("recommended", secret, tmp, {}) as server_:
            per = int(budget["max_pending_per_client"]) + 5
            total = 20 if args.smoke else int(budget["max_pending"]) + 20
            results["recommended"]["slots"] = await slots(server_, per, total)
        print("slots", results["recommended"]["slots"], flush=True)
    return {"settings": budget, "results": results}


def machine() -> dict[str, Any]:
    versions = {
        p: importlib.metadata.version(p) for p in ("uvicorn", "websockets", "uvloop", "hypercorn")
    }
    return {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        **versions,
    }


def markdown(report: dict[str, Any]) -> str:
    res = report["results"]
    configs = [c for c in CONFIGS if c in res]
    lines = [
        "# What an unauthenticated client can cost",
        "",
        f"`python bench/unauth_cost.py` ({report['machine']}); settings: {report['settings']}.",
        "",
        "| measurement | " + " | ".join(HEADINGS[c] for c in configs) + " |",
        "| --- |" + " --- |" * len(configs),
    ]

    def cell(config: str, key: str, field: str) -> str:
        value = res[config].get(key, {}).get(field)
        return "" if value is None else str(value)

    rows = []
    for key in [k for k in res[configs[0]] if k.startswith("ping flood")]:
        rows += [
            (
                f"{key}: RSS growth peak / after, MiB",
                key,
                ("rss_growth_peak_mib", "rss_growth_after_mib"),
            ),
            (f"{key}: server CPU share", key, ("cpu_share",)),
            (f"{key}: MiB of pings taken in", key, ("pings_taken_mib",)),
        ]
    rows += [
        (
            "deflate bombs: RSS growth peak / after, MiB",
            "deflate bombs",
            ("rss_growth_peak_mib", "rss_growth_after_mib"),
        ),
        ("deflate bombs: close codes", "deflate bombs", ("close_codes",)),
        ("token-less idle socket: close frame after, s", "held", ("close_frame_after_s",)),
        (
            "token-less idle socket: TCP dropped after, s (close unanswered)",
            "held",
            ("tcp_dropped_after_s",),
        ),
    ]
    for label, key, fields in rows:
        cells = [" / ".join(cell(c, key, f) for f in fields) for c in configs]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    if "slots" in res.get("recommended", {}):
        for scope, label in (("one_address", "one address"), ("all_addresses", "all addresses")):
            counts = dict(res["recommended"]["slots"][scope])
            tried = counts.pop("tried")
            text = ", ".join(f"{n} {outcome}" for outcome, n in counts.items())
            same = " | (the component's budget: the same)" * (len(configs) - 1)
            lines.append(
                f"| token-less sockets opened at once from {label}: {tried} | {text}{same} |"
            )
    else:
        lines.append(
            "| token-less sockets held | TODO: pending budgets |" + " |" * (len(configs) - 1)
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="a few seconds of each")
    parser.add_argument(
        "--configs",
        nargs="+",
        choices=CONFIGS,
        help="server configurations to measure (default: all; smoke: recommended, defaults)",
    )
    parser.add_argument(
        "--out",
        help="write OUT.json and OUT.md (default: bench/results/unauth_cost, full runs only)",
    )
    args = parser.parse_args()
    args.configs = args.configs or (CONFIGS[:2] if args.smoke else CONFIGS)
    started = time.monotonic()
    report = {"machine": machine(), **asyncio.run(measure(args))}
    report["seconds"] = round(time.monotonic() - started, 1)
    text = markdown(report)
    print(text)
    out = args.out or (None if args.smoke else str(RESULTS))
    if out:
        Path(f"{out}.json").write_text(json.dumps(report, indent=2) + "\n")
        Path(f"{out}.md").write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
