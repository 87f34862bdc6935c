"""Audit rows from any writer on databases without notifications (SQLite, MySQL).

The producer alone (so the cost does not grow with instances or clients) asks the audit
table every ``audit_watch_interval`` for ids above the last one it saw, one indexed range
query, and publishes each new one as ``record_action`` does: every instance's feed reads,
redacts and pushes it once. Off while the PostgreSQL trigger publishes every insert
on the bus; while the producer's ``TriggerListener`` forwards the trigger's notifications
(another bus), it polls only when that is down and once after each (re)connection.

Ids may commit out of order (MySQL: a transaction holding id 10 commits after id 11).
An id skipped below the high-water mark is remembered as a gap for ``_GAP_SECONDS``
and the next queries start below the lowest open gap, so a late commit still goes out;
rows read again are skipped by the feed's seen set. Only the ``_WINDOW`` ids below the
mark are re-checked, which bounds what a query re-reads while a gap stays open (ids
rolled back on MySQL, a sequence's cache on PostgreSQL never fill theirs). On SQLite
writers are serialized and a rolled-back id is reused, so gaps stay empty and each query
reads only new rows.

While the bus is down the watcher pauses: the feed replays the outage from the table
when the bus is back, and the watcher resumes after what the replay covered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import TYPE_CHECKING

from ..telemetry import get_logger
from ._listener import TriggerListener
from ._log import AuditLog

if TYPE_CHECKING:
    from ._feed import AuditFeed  # the feed creates its watcher

__all__ = ["AuditWatcher"]

logger = get_logger("asgi_adminstats.audit")

_PAGE = 200  # rows per query; a longer burst is read page by page in the same poll
_MAX_PAGES = 50  # bounds one poll; what is left waits for the next
_GAP_SECONDS = 30.0  # how long a skipped id may still commit and be pushed
_WINDOW = 200  # skipped ids re-checked at most this far below the high-water mark
_MAX_FAILURES = 32  # distinct failure messages remembered (one WARNING each)


class AuditWatcher:
    def __init__(self, feed: AuditFeed, audit: AuditLog, interval: float) -> None:
        self._feed = feed
        self._audit = audit
        self.interval = interval  # 0: off
        self._cursor = 0
        self._gaps: dict[int, float] = {}  # skipped id -> until when it may still commit
        self._failures: set[str] = set()
        self._resync = False
        self._failing = False
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._polling = asyncio.Lock()  # the listener's catch-up and the tick's poll
        #: On the producer while the trigger is installed and the bus is elsewhere.
        self.listener: TriggerListener | None = None
        self.queries = 0
        self.published = 0

    @property
    def running(self) -> bool:
        return self._task is not None

    async def lead(self, leading: bool) -> None:
        """This instance became (or stopped being) the producer: watch, or stop watching."""
        if leading:
            self._listen()
        if leading and self._task is None and self.interval > 0:
            # A takeover looks below where this feed stands: the old producer may not
            # have published rows under a record_action id this feed already pushed.
            self._cursor = max(self._feed.start_id, self._feed.last_id - _WINDOW)
            self._gaps.clear()
            self._failures.clear()
            self._stopping = asyncio.Event()
            self._task = asyncio.create_task(self._watch(), name="adminstats-audit-watch")
        elif not leading and self._task is not None:
            task, self._task = self._task, None
            self._stopping.set()
            # Let a query in flight finish: cancelling one mid-way can wedge a pool.
            try:
                await asyncio.wait_for(task, 5.0)
            except TimeoutError:
                logger.warning("the audit watcher's last query did not finish in time")
        if not leading and self.listener is not None:
            # After the watch task: it starts a missing listener while it runs.
            listener, self.listener = self.listener, None
            await listener.stop()

    async def _watch(self) -> None:
        next_at = time.monotonic() + self.interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), max(0.0, next_at - time.monotonic()))
                return
            # Fixed rate, skipping the intervals a slow query overran.
            next_at = max(next_at + self.interval, time.monotonic())
            if self._feed.outage:
                self._resync = True  # the feed replays the outage when the bus is back
            elif self._feed.trigger.pushes:
                pass
            elif self._listener_covers():
                self._resync = True  # resume after what it forwarded, if it goes down
            elif not await self.catch_up():
                await self.poll()
            if not self._stopping.is_set():
                self._listen()  # the trigger may be installed since (install_audit_trigger)

    def _listen(self) -> None:
        if self.listener is None and self._feed.trigger.listens:
            self.listener = TriggerListener(self._feed, self._audit)
            self.listener.start()

    def _listener_covers(self) -> bool:
        """Whether the listener forwards every insert now (no poll needed)."""
        listener = self.listener
        return listener is not None and listener.healthy and not listener.catch_up

    async def catch_up(self) -> bool:
        """The one poll a (re)connected listener needs, for rows committed before its
        LISTEN began; False if none is due. Asked again while it fails."""
        listener = self.listener
        if listener is None or not listener.catch_up or not self.running or self._feed.outage:
            return False  # an outage is the feed's replay to catch up
        listener.catch_up = False
        await self.poll()
        if self._failing:
            listener.catch_up = True
        return True

    async def poll(self) -> int:
        """One look at the audit table; the number of ids published. Never raises."""
        async with self._polling:
            return await self._poll_quietly()

    async def _poll_quietly(self) -> int:
        try:
            published = await self._poll()
        except Exception as exc:
            first = (str(exc).splitlines() or [""])[0]  # SQLAlchemy adds the SQL and a link
            problem = f"{type(exc).__name__}: {first}"
            self._failing = True
            if problem not in self._failures and len(self._failures) < _MAX_FAILURES:
                self._failures.add(problem)
                logger.warning(
                    "watching the audit table failed: %s (retried every %g s)",
                    problem,
                    self.interval,
                )
            return 0
        if self._failing:
            self._failing = False
            logger.info("watching the audit table works again")
        self.published += published
        return published

    async def _poll(self) -> int:
        if self._resync:
            self._resync = False
            # Not past what it has not read itself: the replay pushed rows to this
            # instance's clients only (``pushed`` is False for them: they go out again).
            self._cursor = max(self._cursor, self._feed.start_id, self._feed.last_id - _WINDOW)
            self._gaps.clear()
        published = 0
        low = min(self._gaps) - 1 if self._gaps else self._cursor
        for _ in range(_MAX_PAGES):
            self.queries += 1  # attempts: a failing query costs too
            rows = await self._audit.since(low, _PAGE)
            for data in rows:
                action_id = int(data["id"])
                self._gaps.pop(action_id, None)
                if action_id > self._cursor:
                    self._note_gaps(self._cursor, action_id)
                    self._cursor = action_id
                if not self._feed.pushed(action_id):
                    await self._feed.publish(data)
                    published += 1
            if len(rows) < _PAGE:
                break
            low = int(rows[-1]["id"])
        now = time.monotonic()
        for action_id in [i for i, until in self._gaps.items() if until < now]:
            del self._gaps[action_id]
        return published

    def _note_gaps(self, below: int, above: int) -> None:
        """Ids between two seen ones (exclusive) may still commit: watch them a while."""
        until = time.monotonic() + _GAP_SECONDS
        for action_id in range(max(below + 1, above - _WINDOW), above):
            self._gaps[action_id] = until
        # Re-reading is bounded: a gap that far behind is left to the snapshot.
        for action_id in [i for i in self._gaps if i < above - _WINDOW]:
            del self._gaps[action_id]
