"""This instance's sessions and the fan-out to them.

Messages arrive here already encoded (once per instance); the hub only hands the same
text to every subscribed session's outbox (a few non-blocking operations each). A
fan-out to more than one slice of sessions runs in a task that yields to the event
loop between slices, so a handshake is not held up for the whole of it; an audit push
goes ahead of a stats fan-out in progress (a session's lanes are separate, so no
session's order changes), and notifications keep their order among themselves.

Each snapshot gets this instance's next ``seq`` (a ``StatsTick``); sessions with deltas
get the tick's one patch from the snapshot fanned out before it, or its full frame.
With a ``History``, each snapshot is also added to it, after its fan-out has begun.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from typing import Any, Protocol

from .. import protocol
from ..telemetry import Tally
from ._fanout import fan_out
from ._history import History
from ._outbox import Close, Outbox
from ._tick import StatsTick

__all__ = ["Hub", "Member"]


class Member(Protocol):
    outbox: Outbox

    @property
    def subscriptions(self) -> AbstractSet[str]: ...

    @property
    def sub(self) -> str | None: ...


Observe = Callable[[str, float], None]


class Hub:
    def __init__(
        self,
        *,
        slice_size: int = 64,
        observe: Observe | None = None,
        history: History | None = None,
        tally: Tally | None = None,
    ) -> None:
        """``tally``: where the fan-outs count the frames they write (the writers count
        their own writes in theirs, the same one in the component)."""
        self._members: set[Member] = set()
        self._per_subject: dict[str, int] = {}
        self.sockets = 0  # open sockets, including those still authenticating
        self._latest: StatsTick | None = None
        self._fanned: StatsTick | None = None  # the last tick whose fan-out began
        self._seq = 0
        self._slice = slice_size
        self._observe = observe  # (channel, seconds) per completed fan-out
        self._notifications: deque[str] = deque()
        self._next_stats: StatsTick | None = None  # only the newest waiting snapshot goes out
        self._runner: asyncio.Task[None] | None = None
        #: Told when the first session arrives; True: a snapshot counting it is coming.
        self.on_first: Callable[[], bool] | None = None
        self._waiting: set[Member] = set()  # added meanwhile: served by that snapshot
        #: The recent snapshots' figures (``history_seconds``); None: history is off.
        self.history = history
        self.tally = Tally() if tally is None else tally

    @property
    def latest_stats(self) -> str | None:
        """The latest snapshot's text, as published."""
        return None if self._latest is None else self._latest.text

    def latest_data(self) -> dict[str, Any] | None:
        """The latest snapshot's ``data`` (decoded: for occasional readers only)."""
        if self._latest is None:
            return None
        data: dict[str, Any] = json.loads(self._latest.text)["data"]
        return data

    def __len__(self) -> int:
        return len(self._members)

    def count_subject(self, sub: str) -> int:
        return self._per_subject.get(sub, 0)

    def add(self, member: Member) -> None:
        """Register a member; it gets the latest snapshot at once if subscribed to stats,
        or the next one when that is coming to count it.

        The latest snapshot was counted before this member existed: when the hub goes
        from no member to one, ``on_first`` (the producer) may say a snapshot counting
        it is coming (when the latest counts nobody); then it (and any member added
        meanwhile) waits for that one instead of seeing 0 connections, until
        ``release_waiting`` at the latest. A snapshot that counts nobody does not end
        the wait: it was counted while the hub was empty (a client left as this one
        came, as React's StrictMode does), and the tick this one asked for follows.
        """
        first = not self._members
        self._members.add(member)
        if member.sub is not None:
            self._per_subject[member.sub] = self._per_subject.get(member.sub, 0) + 1
        coming = first and self.on_first is not None and self.on_first()
        if "stats" in member.subscriptions:
            if coming or self._waiting:
                self._waiting.add(member)
            else:
                self.send_latest(member)

    def counts_nobody(self) -> bool:
        """Whether the latest snapshot says no admin is connected: the one count that a
        new member knows to be wrong (decoded: for the first member only)."""
        return self._latest is not None and self._latest.counts_nobody()

    def release_waiting(self) -> None:
        """Members still waiting for a snapshot get the latest there is (none came)."""
        waiting, self._waiting = self._waiting, set()
        for member in waiting:
            if member in self._members and "stats" in member.subscriptions:
                self.send_latest(member)

    def send_latest(self, member: Member) -> None:
        """The latest snapshot to ``member`` in full, if there is one yet (not while it
        waits for a fresher one: that one comes in full too)."""
        if self._latest is not None and member not in self._waiting:
            member.outbox.put_latest(self._latest)

    def discard(self, member: Member) -> None:
        self._waiting.discard(member)
        if member in self._members:
            self._members.discard(member)
            if member.sub is not None:
                left = self._per_subject.get(member.sub, 1) - 1
                if left > 0:
                    self._per_subject[member.sub] = left
                else:
                    self._per_subject.pop(member.sub, None)

    def publish_stats(self, text: str) -> None:
        self._seq += 1
        tick = StatsTick(self._seq, text)
        if self._waiting and not tick.counts_nobody():
            self._waiting.clear()  # it counts them: it reaches them all
        self._latest = tick
        if self._inline():
            started = time.perf_counter()
            self._begin(tick)
            _deliver_tick(tick, self._stats_members(), self.tally)
            if self._observe is not None:
                self._observe("stats", time.perf_counter() - started)
        else:
            self._next_stats = tick  # a snapshot still waiting its turn is stale now
            self._start()
        if self.history is not None:  # once per snapshot and instance, never per client
            self.history.add(text)

    def history_reply(self, since: float | None = None) -> str:
        """The answer to a ``history`` request: the history, or an error when it is off."""
        if self.history is None:
            return protocol.error(code="history_disabled", message="history is off here")
        return self.history.reply(since)

    def _begin(self, tick: StatsTick) -> None:
        tick.follow(self._fanned)
        self._fanned = tick

    def publish_notification(self, text: str) -> None:
        if self._inline():
            started = time.perf_counter()
            _deliver_notification(text, list(self._members), self.tally)
            if self._observe is not None:
                self._observe("notifications", time.perf_counter() - started)
            return
        self._notifications.append(text)
        self._start()

    def _stats_members(self) -> list[Member]:
        if not self._waiting:
            return list(self._members)
        # Members wait only while the latest snapshot counts nobody: not this one.
        return [member for member in self._members if member not in self._waiting]

    def _inline(self) -> bool:
        return self._runner is None and len(self._members) <= self._slice

    def _start(self) -> None:
        if self._runner is None:
            self._runner = asyncio.get_running_loop().create_task(
                self._run(), name="adminstats-fanout"
            )

    async def _run(self) -> None:
        # One slice per loop turn. Waiting notifications go first, each to everyone;
        # a stats fan-out in progress resumes where it stopped.
        stats: tuple[StatsTick, list[Member], float] | None = None
        position = 0
        try:
            while True:
                if self._notifications:
                    await self._fan_out("notifications", self._notifications.popleft())
                    continue
                if stats is None:
                    if self._next_stats is None:
                        return
                    stats = (self._next_stats, self._stats_members(), time.perf_counter())
                    self._next_stats, position = None, 0
                    self._begin(stats[0])
                tick, members, started = stats
                _deliver_tick(tick, members[position : position + self._slice], self.tally)
                position += self._slice
                if position >= len(members):
                    stats = None
                    if self._observe is not None:
                        self._observe("stats", time.perf_counter() - started)
                await asyncio.sleep(0)  # let handshakes and audit pushes in
        finally:
            if self._runner is asyncio.current_task():
                self._runner = None

    async def _fan_out(self, channel: str, text: str) -> None:
        started = time.perf_counter()
        members = list(self._members)
        for start in range(0, len(members), self._slice):
            _deliver_notification(text, members[start : start + self._slice], self.tally)
            await asyncio.sleep(0)
        if self._observe is not None:
            self._observe(channel, time.perf_counter() - started)

    def close_all(self, close: Close) -> None:
        self._waiting.clear()
        self._notifications.clear()
        self._next_stats = None
        if self._runner is not None:
            self._runner.cancel()  # a task cancelled before its first step runs no finally
            self._runner = None
        for member in list(self._members):
            member.outbox.close(close)


def _deliver_tick(tick: StatsTick, members: list[Member], tally: Tally) -> None:
    fan_out(members, "stats", "stats", Outbox.offer_tick, tick, tally)


def _deliver_notification(text: str, members: list[Member], tally: Tally) -> None:
    fan_out(members, "notifications", "audit_action", Outbox.offer_notification, text, tally)
