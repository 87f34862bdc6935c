"""Audit ids across connections: repeats dropped, the highest kept for ``since``."""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["AuditIds", "RecentIds"]

_SEEN_IDS = 1000  # audit ids remembered for de-duplication


class RecentIds:
    """The last ``limit`` ids, oldest forgotten first (ids increase)."""

    def __init__(self, limit: int = _SEEN_IDS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, action_id: str) -> bool:
        """Remember ``action_id``; False if it was already there."""
        if action_id in self._ids:
            return False
        self._ids[action_id] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


class AuditIds:
    """What one client has seen; it outlives each connection so a reconnect can replay."""

    def __init__(self) -> None:
        self.seen = RecentIds()
        #: The highest audit id seen (pushes and ``recentActions``): the next ``since``.
        self.last: str | None = None

    def note(self, action_id: object) -> None:
        key = str(action_id)
        # The server takes ASCII digits only as `since` (at most 18 of them); isdigit()
        # alone takes "²", which int() then refuses.
        if not (key.isascii() and key.isdigit()) or len(key) > 18:
            return
        if self.last is None or int(key) > int(self.last):
            self.last = key
