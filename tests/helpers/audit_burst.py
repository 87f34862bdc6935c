"""Delivery checks for audit pushes: a writer in another process, clients that count.

:class:`Writer` inserts audit rows from a new Python process (asyncpg or sqlite3, as a
script or a cron job would), one commit per row, printing each id as it commits, so a
test can act in the middle of the burst. :class:`Collector` keeps every ``audit_action``
id a WebSocket client receives, in order. :func:`problems` compares what each client got
with the table: each id exactly once, and each writer's ids in id order.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
from websockets.asyncio.client import ClientConnection

from helpers.cluster import Cluster, init_db

__all__ = ["Collector", "Writer", "has_trigger", "problems", "running_cluster", "table_ids"]

_POSTGRES = """
import asyncio, sys, asyncpg
async def main(url, n, pace):
    conn = await asyncpg.connect(url)
    for i in range(n):
        row_id = await conn.fetchval(
            "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
            " VALUES ('EXTERNAL_EDIT', 'burst', 'PLAYER', $1, now() at time zone 'utc')"
            " RETURNING id", str(i))
        print(row_id, flush=True)
        await asyncio.sleep(pace)
    await conn.close()
asyncio.run(main(sys.argv[1], int(sys.argv[2]), float(sys.argv[3])))
"""

_SQLITE = """
import datetime, sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], timeout=10)
for i in range(int(sys.argv[2])):
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    cursor = db.execute(
        "INSERT INTO audit_log (action, admin, target_type, target_id, created_at)"
        " VALUES ('EXTERNAL_EDIT', 'burst', 'PLAYER', ?, ?)", (str(i), now.isoformat(" ")))
    db.commit()
    print(cursor.lastrowid, flush=True)
    time.sleep(float(sys.argv[3]))
"""


def _sqlite_path(database_url: str) -> str | None:
    return database_url.removeprefix("sqlite:///") if database_url.startswith("sqlite") else None


async def table_ids(database_url: str, above: int = 0) -> list[int]:
    """The ids in ``audit_log`` above ``above``, ascending (the source of truth)."""
    path = _sqlite_path(database_url)
    if path is not None:

        def read() -> list[int]:
            with contextlib.closing(sqlite3.connect(path, timeout=10)) as db:
                sql = "SELECT id FROM audit_log WHERE id > ? ORDER BY id"
                return [int(row[0]) for row in db.execute(sql, (above,))]

        return await asyncio.to_thread(read)
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT id FROM audit_log WHERE id > $1 ORDER BY id", above)
    finally:
        await conn.close()
    return [int(row["id"]) for row in rows]


async def has_trigger(database_url: str) -> bool:
    """Whether any (user) trigger is on PostgreSQL's ``audit_log``."""
    conn = await asyncpg.connect(database_url)
    try:
        sql = "SELECT COUNT(*) FROM pg_trigger WHERE tgrelid = 'audit_log'::regclass"
        return bool(await conn.fetchval(sql + " AND NOT tgisinternal"))
    finally:
        await conn.close()


class Writer:
    """``rows`` inserts ``pace`` seconds apart from another process; ``ids`` as they commit."""

    def __init__(self, database_url: str, rows: int, pace: float) -> None:
        path = _sqlite_path(database_url)
        self._args = (_SQLITE, path) if path is not None else (_POSTGRES, database_url)
        self.rows = rows
        self.pace = pace
        self.ids: list[int] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        code, target = self._args
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code,
            target,
            str(self.rows),
            str(self.pace),
            stdout=asyncio.subprocess.PIPE,
        )
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for _ in range(self.rows + 1):
            line = await self._proc.stdout.readline()
            if not line:
                return
            self.ids.append(int(line))

    async def reached(self, n: int, timeout: float = 30.0) -> None:
        """Wait (bounded) until ``n`` rows are committed."""
        for _ in range(int(timeout / 0.01)):
            if len(self.ids) >= n:
                return
            assert self._reader is not None and not self._reader.done(), self.ids
            await asyncio.sleep(0.01)
        raise AssertionError(f"the writer committed {len(self.ids)} of {n} rows in {timeout:g} s")

    async def finish(self, timeout: float = 60.0) -> list[int]:
        assert self._proc is not None and self._reader is not None
        try:
            await asyncio.wait_for(asyncio.gather(self._reader, self._proc.wait()), timeout)
        finally:
            if self._proc.returncode is None:
                self._proc.kill()
                await self._proc.wait()
        assert self._proc.returncode == 0, self._proc.returncode
        assert len(self.ids) == self.rows, self.ids
        return self.ids


class Collector:
    """Every ``audit_action`` one client receives, in arrival order."""

    def __init__(self, name: str, ws: ClientConnection) -> None:
        self.name = name
        self.ids: list[int] = []
        self.replayed: set[int] = set()
        self._ws = ws
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        for _ in range(100_000):
            message = json.loads(await self._ws.recv())
            if message["type"] == "audit_action":
                self.ids.append(int(message["data"]["id"]))
                if message["data"].get("replayed"):
                    self.replayed.add(self.ids[-1])

    async def complete(
        self, expected: set[int], *, timeout: float, linger: float, quiet: float = 3.0
    ) -> None:
        """Wait (bounded) until every expected id arrived, then ``linger`` for duplicates.

        Gives up early once nothing arrived for ``quiet`` seconds: a lost id never comes.
        """
        loop = asyncio.get_running_loop()
        heard, last_at = len(self.ids), loop.time()
        for _ in range(int(timeout / 0.02)):
            if expected <= set(self.ids) or self._task.done():
                break
            if len(self.ids) != heard:
                heard, last_at = len(self.ids), loop.time()
            elif loop.time() - last_at > quiet:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(linger)
        self._task.cancel()  # cancelling recv() is safe with websockets' asyncio client
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def problems(
    collector: Collector, writers: dict[str, list[int]], *, ordered: bool = True
) -> list[str]:
    """What breaks "each row once per client, in id order per writer" (empty: none).

    ``ordered=False`` across an outage or a takeover: rows caught up from the table
    arrive after live ones heard meanwhile, each still once."""
    expected = {i for ids in writers.values() for i in ids}
    counts = collections.Counter(collector.ids)
    found = []
    lost = sorted(expected - set(counts))
    twice = sorted(i for i, n in counts.items() if n > 1)
    extra = sorted(set(counts) - expected)
    if lost:
        found.append(f"{collector.name}: lost {len(lost)}: {lost}")
    if twice:
        found.append(f"{collector.name}: duplicated {len(twice)}: {twice}")
    if extra:
        found.append(f"{collector.name}: ids of no writer: {extra}")
    for writer, ids in writers.items():
        if not ordered:
            break
        own = set(ids)
        order = [i for i in collector.ids if i in own]
        if order != sorted(order):
            found.append(f"{collector.name}: {writer}'s ids out of order: {order}")
    return found


@contextlib.asynccontextmanager
async def running_cluster(
    n: int,
    tmp_path: Path,
    *,
    bus_url: str,
    database_url: str,
    trigger: bool = False,
    env: dict[str, str] | None = None,
) -> AsyncIterator[Cluster]:
    """``n`` sample-app processes on any bus and database pair; all killed on the way out."""
    c = Cluster("matrix", tmp_path, bus_url=bus_url, database_url=database_url,
                stats_interval=0.5, extra_env=env)  # fmt: skip
    try:
        if trigger:
            await init_db(database_url, c.prefix)
        await c.add(1)  # it seeds the database; the others start after it
        if n > 1:
            await c.add(n - 1)
        await c.settled(timeout=20.0)
        yield c
    finally:
        c.kill_all()
