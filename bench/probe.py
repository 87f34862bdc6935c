"""One new WebSocket connection at a time, from its own process: handshake timing.

    async with Probe(port, headers) as probe:    # started pinned to CPU 1 (the loadgen's)
        probe.send_open()                        # the probe connects now
        result = await probe.result()            # {"start", "upgraded", "first"} or error

A connection opened by the load generator itself would be timed by an event loop that
is busy reading the fan-out it measures; the probe's own loop only has this one socket
(on CPU 1 too, where the kernel schedules it at once: the loadgen mostly waits).

Run as ``python bench/probe.py --port P`` (what :class:`Probe` does), it reads commands on
stdin: ``open`` opens one connection (TCP connect, upgrade, the server's first message:
adminstats' and seed's ``connected``) and answers one JSON line of ``perf_counter`` times
(``CLOCK_MONOTONIC``: one clock for every process here): ``start`` when it read the
command, ``upgraded`` when the 101 arrived, ``first`` when the first message did; or
``{"error": ...}``. The connection is then aborted. EOF on stdin ends it.
"""

# Every wait here is bounded, and the bound is part of the call (as in tests/).
# ruff: noqa: ASYNC109

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from loadgen import Clients
from server_process import kill_group
from servers import PATH, die_with_parent, pin

SELF = Path(__file__).resolve()
OPEN_TIMEOUT = 10.0  # seconds for one handshake, the server's first message included


async def _open(port: int, headers: list[tuple[str, str]]) -> dict[str, Any]:
    start = time.perf_counter()
    clients = Clients("127.0.0.1", port, path=PATH, headers=headers)
    try:
        await clients.connect(1, deflate=False, timeout=OPEN_TIMEOUT)
        conn = clients.conns[0]
        # Polls, but the time is taken on arrival: the poll only delays the answer.
        await clients.wait_frames(1, timeout=max(0.0, start + OPEN_TIMEOUT - time.perf_counter()))
        if not conn.times:
            return {"error": "no first message" + (" (closed)" if conn.closed else "")}
        return {"start": start, "upgraded": conn.upgraded_at, "first": conn.times[0]}
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        clients.close()


async def _serve(port: int, headers: list[tuple[str, str]]) -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while line := await reader.readline():
        if line.strip() == b"open":
            answer = await _open(port, headers)
        else:
            answer = {"error": f"unknown command {line[:20]!r}"}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cpu", type=int, default=1)
    args = parser.parse_args()
    die_with_parent()
    pin(args.cpu)
    headers = [(k, v) for k, v in json.loads(os.environ.get("PROBE_HEADERS", "[]"))]
    import uvloop

    uvloop.run(_serve(args.port, headers))


class Probe:
    """The probe process, started and killed (its process group) by this block."""

    def __init__(self, port: int, headers: Sequence[tuple[str, str]]) -> None:
        self._port = port
        self._env = {**os.environ, "PROBE_HEADERS": json.dumps(list(headers))}
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Probe:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            str(SELF),
            *("--port", str(self._port)),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self._env,
            start_new_session=True,
        )
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
            await kill_group(self._proc)

    def send_open(self) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        self._proc.stdin.write(b"open\n")

    async def result(self, timeout: float = OPEN_TIMEOUT + 5) -> dict[str, Any]:
        assert self._proc is not None and self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"the probe exited ({self._proc.returncode})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def open(self) -> dict[str, Any]:
        self.send_open()
        return await self.result()


if __name__ == "__main__":
    main()
