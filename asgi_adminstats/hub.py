"""This instance's sessions and the fan-out to them.

Messages arrive here already encoded (once per instance); the hub only hands the same
text to every subscribed session's outbox.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from .outbox import Close, Outbox

__all__ = ["Hub", "Member"]


class Member(Protocol):
    subscriptions: set[str]
    outbox: Outbox

    @property
    def sub(self) -> str | None: ...


class Hub:
    def __init__(self) -> None:
        self._members: set[Member] = set()
        self._per_subject: dict[str, int] = {}
        self.sockets = 0  # open sockets, including those still authenticating
        self.latest_stats: str | None = None

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
        for member in list(self._members):
            if "stats" in member.subscriptions:
                member.outbox.put_stats(text)

    def publish_notification(self, text: str) -> None:
        for member in list(self._members):
            if "notifications" in member.subscriptions:
                member.outbox.put_notification(text)

    def close_all(self, close: Close) -> None:
        for member in list(self._members):
            member.outbox.close(close)
