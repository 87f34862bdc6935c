"""The collector interface, shared by built-in and custom collectors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

from ..errors import AdminStatsError

__all__ = ["Collector", "CollectorFailure"]


@runtime_checkable
class Collector(Protocol):
    """Contributes part of the snapshot.

    ``collect()`` returns a mapping that is deep-merged into ``stats_update.data``
    (e.g. ``{"game": {"matches": 3}}``). It may raise: the engine then shows the last
    good value, marked stale, and the tick goes on. Blocking work belongs in a thread.
    """

    name: str

    async def collect(self) -> Mapping[str, Any]: ...


class CollectorFailure(AdminStatsError):
    """A failure that still knows a fresh fact: ``partial`` replaces the stale value.

    Example: a failed latency probe is not "stale healthy", it is ``down``.
    """

    def __init__(self, reason: str, partial: Mapping[str, Any]) -> None:
        super().__init__(reason)
        self.reason = reason
        self.partial = partial
