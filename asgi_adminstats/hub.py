"""This instance's sessions and the fan-out to them.

Messages arrive here already encoded (once per instance); the hub only hands the same
text to every subscribed session's outbox (a few non-blocking operations each: the
sessions' own writers do the writing). A fan-out to more than one slice of sessions
runs in a task that yields to the event loop between slices, so a handshake or an
audit push is not held up for the whole of it; messages keep their order.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from .outbox import Close, Outbox

__all__ = ["Hub", "Member"]


class Member(Protocol):
    subscriptions: set[str]
    outbox: Outbox

    @property
    def sub(self) -> str | None: ...


Observe = Callable[[str, float], None]


class Hub:
    def __init__(self, *, slice_size: int = 64, observe: Observe | None = None) -> None:
        self._members: set[Member] = set()
        self._per_subject: dict[str, int] = {}
        self.sockets = 0  # open sockets, including those still authenticating
        self.latest_stats: str | None = None
        self._slice = slice_size
        self._observe = observe  # (channel, seconds) per completed fan-out
        self._queue: deque[tuple[str, str]] = deque()
        self._runner: asyncio.Task[None] | None = None

    def latest_data(self) -> dict[str, Any] | None:
        """The latest snapshot's ``data`` (decoded: for occasional readers only)."""
        if self.latest_stats is None:
            return None
        data: dict[str, Any] = json.loads(self.latest_stats)["data"]
        return data

    def __len__(self) -> int:
        return len(self._members)

    def count_subject(self, sub: str) -> int:
        return self._per_subject.get(sub, 0)

    def add(self, member: Member) -> None:
        """Register a member; it gets the latest snapshot at once if subscribed to stats."""
        self._members.add(member)
        if member.sub is not None:
            self._per_subject[member.sub] = self._per_subject.get(member.sub, 0) + 1
        if self.latest_stats is not None and "stats" in member.subscriptions:
            member.outbox.put_stats(self.latest_stats)

    def discard(self, member: Member) -> None:
        if member in self._members:
            self._members.discard(member)
            if member.sub is not None:
                left = self._per_subject.get(member.sub, 1) - 1
                if left > 0:
                    self._per_subject[member.sub] = left
                else:
                    self._per_subject.pop(member.sub, None)

    def publish_stats(self, text: str) -> None:
        self.latest_stats = text
        # A snapshot still waiting its turn is stale now: only the newest goes out.
        if any(channel == "stats" for channel, _ in self._queue):
            self._queue = deque(item for item in self._queue if item[0] != "stats")
        self._publish("stats", text)

    def publish_notification(self, text: str) -> None:
        self._publish("notifications", text)

    def _publish(self, channel: str, text: str) -> None:
        if self._runner is None and len(self._members) <= self._slice:
            started = time.perf_counter()
            _deliver(channel, text, list(self._members))
            if self._observe is not None:
                self._observe(channel, time.perf_counter() - started)
            return
        self._queue.append((channel, text))
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name="adminstats-fanout"
            )

    async def _run(self) -> None:
        try:
            while self._queue:
                channel, text = self._queue.popleft()
                started = time.perf_counter()
                members = list(self._members)
                for start in range(0, len(members), self._slice):
                    if start:
                        await asyncio.sleep(0)  # let handshakes and other pushes in
                    _deliver(channel, text, members[start : start + self._slice])
                if self._observe is not None:
                    self._observe(channel, time.perf_counter() - started)
        finally:
            if self._runner is asyncio.current_task():
                self._runner = None

    async def idle(self) -> None:
        """Wait until every published message has been handed to the outboxes."""
        while self._runner is not None:
            await asyncio.wait([self._runner])

    def close_all(self, close: Close) -> None:
        self._queue.clear()
        if self._runner is not None:
            self._runner.cancel()  # a task cancelled before its first step runs no finally
            self._runner = None
        for member in list(self._members):
            member.outbox.close(close)


def _deliver(channel: str, text: str, members: list[Member]) -> None:
    if channel == "stats":
        for member in members:
            if "stats" in member.subscriptions:
                member.outbox.put_stats(text)
    else:
        for member in members:
            if "notifications" in member.subscriptions:
                member.outbox.put_notification(text)
