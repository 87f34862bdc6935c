"""For the audit trigger tests: a writer in another process (asyncpg, as psql would),
servers with the trigger setting on, and bounded waits."""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from asgi_adminstats import AdminStats, Settings

from support.loopback import make_settings, recv_type, serve, starlette_host

__all__ = [
    "SLOW",
    "audit_all",
    "audit_through_sentinel",
    "audit_until",
    "ids_from_writer",
    "init_db",
    "insert_in_another_process",
    "listening",
    "polls_after_now",
    "served",
    "trigger_settings",
    "until",
]

SLOW = 60.0  # audit_watch_interval where only the listener may deliver within the test

_WRITER = """
import asyncio, json, sys
import asyncpg
async def main():
    conn = await asyncpg.connect(sys.argv[1])
    ids = []
    for i in range(int(sys.argv[2])):
        ids.append(str(await conn.fetchval(
            "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
            " VALUES ('EXTERNAL_EDIT', 'psql', 'PLAYER', $1, now() at time zone 'utc')"
            " RETURNING id", str(i))))
    await conn.close()
    print(json.dumps(ids))
asyncio.run(main())
"""


async def insert_in_another_process(url: str, n: int) -> list[str]:
    """``n`` plain INSERTs (one commit each) from a new Python process; their ids."""
    return await ids_from_writer(_WRITER, url, n)


async def ids_from_writer(script: str, target: str, n: int) -> list[str]:
    """Run a writer ``script`` (``python -c script target n``, printing its ids as JSON)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, target, str(n), stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0
    ids: list[str] = json.loads(out)
    return ids


async def until(check: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    for _ in range(int(timeout / 0.02)):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {timeout:g} s: {what}")


async def audit_until(ws: ClientConnection, last_id: str, limit: int = 500) -> list[str]:
    """The ids of every ``audit_action`` up to and including ``last_id``."""
    ids: list[str] = []
    for _ in range(limit):
        message = await recv_type(ws, "audit_action", timeout=10)
        ids.append(message["data"]["id"])
        if ids[-1] == last_id:
            return ids
    raise AssertionError(f"no audit_action {last_id} among {len(ids)}")


async def audit_all(
    ws: ClientConnection, expected: set[str], settle: float = 0.5, limit: int = 500
) -> list[str]:
    """The ids of every ``audit_action`` until all of ``expected`` arrived, and of those
    within ``settle`` seconds after (where a second copy would show). For rows that take
    different paths (a trigger's forwarded by the producer, a record_action published by
    another instance): one is not bound to arrive before the other."""
    ids: list[str] = []
    for _ in range(limit):
        if expected <= set(ids):
            with contextlib.suppress(TimeoutError):
                while len(ids) < limit:
                    ids.append((await recv_type(ws, "audit_action", timeout=settle))["data"]["id"])
            return ids
        ids.append((await recv_type(ws, "audit_action", timeout=10))["data"]["id"])
    raise AssertionError(f"not every one of {sorted(expected)} among {len(ids)}")


async def polls_after_now(stats: AdminStats, n: int = 2) -> None:
    """Wait for ``n`` more watcher queries: whatever was committed before is out."""
    target = stats.feed.watcher.queries + n
    await until(lambda: stats.feed.watcher.queries >= target, f"{n} more watcher queries")


async def audit_through_sentinel(stats: AdminStats, ws: ClientConnection) -> tuple[list[str], str]:
    """Once the watcher has polled past what is committed now, a ``record_action``
    sentinel; the ``audit_action`` ids up to it, and its id."""
    await polls_after_now(stats)
    sentinel = str((await stats.record_action("UNBAN_PLAYER", "alice", "PLAYER", 1))["id"])
    return await audit_until(ws, sentinel), sentinel


def init_db(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m asgi_adminstats init-db *args``, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "asgi_adminstats", "init-db", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def listening(stats: AdminStats) -> Callable[[], bool]:
    def check() -> bool:
        listener = stats.feed.watcher.listener
        return listener is not None and listener.healthy

    return check


@contextlib.asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[tuple[AdminStats, str]]:
    stats = AdminStats(settings)
    async with serve(starlette_host(stats)) as addr:
        yield stats, addr


def trigger_settings(tmp_path: Path, url: str, bus: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "broadcast_url": bus,
        "channel_prefix": f"t{uuid.uuid4().hex[:10]}",
        "install_audit_trigger": True,
        "stats_interval": 0.2,
        "audit_watch_interval": SLOW,
    }
    return make_settings(tmp_path, **{**values, **overrides})
