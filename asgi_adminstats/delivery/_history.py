"""The snapshot history: the last snapshots' figures, for the ``history`` message (a
dashboard's charts start with the last hour instead of empty).

Each snapshot is reduced to its time (its frame's ``timestamp``) and its numeric leaves
as dotted paths (``online.users``, ``system.database.latency``); strings, booleans,
lists and the ``meta`` subtree are left out. Each series is a column (``array("d")``,
NaN where a snapshot had no number) as long as the ring: memory is 8 bytes per point
and series, whatever a snapshot holds, for at most ``MAX_SERIES`` series (a path beyond
them is ignored, and logged once).

Every instance keeps its own, fed by its hub with each snapshot it fans out, so a
freshly started instance holds only what it has seen since. The full reply is encoded
at most once per snapshot, however many clients ask for it.
"""

from __future__ import annotations

import json
import math
import time
from array import array
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime

from .. import protocol
from ..telemetry import get_logger

__all__ = ["MAX_SERIES", "History"]

logger = get_logger("asgi_adminstats.delivery")

#: The most series kept: a snapshot's figures are a dozen; a host's own collectors may
#: add some, but not one per user.
MAX_SERIES = 32
_MAX_DEPTH = 8  # deeper than any figure worth a chart (snapshots nest 3 deep)
_EXACT = 2**53  # integers a double holds exactly: sent back as integers
Figure = tuple[str, float]  # (dotted path, value)


class History:
    """A ring of the last ``capacity`` snapshots' figures; ``interval``: the seconds
    between snapshots (``stats_interval``), sent with each reply."""

    def __init__(self, capacity: int, interval: float) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 (got {capacity})")
        self.capacity = capacity
        self.interval = interval
        self._times = array("q", bytes(8 * capacity))  # epoch milliseconds
        self._columns: dict[str, array[float]] = {}
        self._start = 0  # the slot of the oldest point
        self._count = 0
        self._full: str | None = None  # the whole history encoded, until the next point
        self._ignored_logged = False

    def __len__(self) -> int:
        return self._count

    @property
    def series(self) -> list[str]:
        return list(self._columns)

    @property
    def nbytes(self) -> int:
        """The columns' size: 8 bytes per point and series, plus the times."""
        columns = sum(column.itemsize * len(column) for column in self._columns.values())
        return self._times.itemsize * len(self._times) + columns

    def add(self, text: str) -> None:
        """One ``stats_update`` frame as published; anything else is skipped."""
        try:
            message = json.loads(text)
        except (ValueError, RecursionError):
            return
        data = message.get("data") if isinstance(message, dict) else None
        if isinstance(data, dict):
            self.add_figures(_epoch_ms(message.get("timestamp")), dict(_figures(data)))

    def add_figures(self, time_ms: int, figures: dict[str, float]) -> None:
        """One point: ``figures`` by path (consumed); the oldest point goes when full."""
        if self._count < self.capacity:
            slot = (self._start + self._count) % self.capacity
            self._count += 1
        else:
            slot = self._start
            self._start = (self._start + 1) % self.capacity
        self._times[slot] = time_ms
        for path, column in self._columns.items():
            column[slot] = figures.pop(path, math.nan)
        room = MAX_SERIES - len(self._columns)
        for path, value in list(figures.items())[:room]:  # paths not seen before
            column = array("d", [math.nan]) * self.capacity
            column[slot] = value
            self._columns[path] = column
        if len(figures) > room:
            self._ignore(len(figures) - room)
        self._full = None

    def reply(self, since: float | None = None) -> str:
        """The ``history`` message: every point held, or those after ``since`` (epoch ms)."""
        slots = self._slots()
        if since is not None:
            slots = [slot for slot in slots if self._times[slot] > since]
            if len(slots) < self._count:
                return self._encode(slots)  # a tail (a reconnect's gap): small, not kept
        if self._full is None:
            self._full = self._encode(slots)
        return self._full

    def _slots(self) -> list[int]:
        """The slots of the points held, oldest first."""
        return [(self._start + i) % self.capacity for i in range(self._count)]

    def _encode(self, slots: list[int]) -> str:
        return protocol.history(
            interval=self.interval,
            times=[self._times[slot] for slot in slots],
            series={
                path: [_value(column[slot]) for slot in slots]
                for path, column in self._columns.items()
            },
        )

    def _ignore(self, new: int) -> None:
        if not self._ignored_logged:
            self._ignored_logged = True
            logger.warning(
                "history: snapshots have more than %d numeric series; %d path(s) ignored "
                "(and any later ones; logged once)",
                MAX_SERIES,
                new,
            )


def _figures(data: Mapping[str, object], prefix: str = "", depth: int = 0) -> Iterator[Figure]:
    """The numeric leaves of ``data`` by dotted path; not ``meta`` (freshness, not figures)."""
    for key, value in data.items():
        if not prefix and key == "meta":
            continue
        path = f"{prefix}{key}"
        if isinstance(value, bool):
            continue
        if isinstance(value, float):
            if math.isfinite(value):
                yield path, value
        elif isinstance(value, int):
            if -_EXACT < value < _EXACT:  # a larger one would come back changed
                yield path, float(value)
        elif isinstance(value, Mapping) and depth < _MAX_DEPTH:
            yield from _figures(value, f"{path}.", depth + 1)


def _epoch_ms(stamp: object) -> int:
    """A frame's ``timestamp`` (ISO 8601) in epoch milliseconds; now, if it has none."""
    if isinstance(stamp, str):
        try:
            moment = datetime.fromisoformat(stamp)
        except ValueError:
            pass
        else:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return round(moment.timestamp() * 1000)
    return round(time.time() * 1000)


def _value(number: float) -> int | float | None:
    if math.isnan(number):
        return None
    if number.is_integer() and -_EXACT < number < _EXACT:
        return int(number)
    return number
