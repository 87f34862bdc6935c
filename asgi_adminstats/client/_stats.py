"""The snapshot a connection with deltas holds, and the ``stats_delta`` applied to it.

Callers never see a patch: a delta that applies becomes a ``stats_update`` with the
merged snapshot; one that does not (its base is not what is held) changes nothing and
the connection asks for the latest snapshot in full.
"""

from __future__ import annotations

import copy
from typing import Any

from ..protocol import merge_patch

__all__ = ["HeldStats"]


class HeldStats:
    def __init__(self) -> None:
        self.seq: int | None = None
        self._data: dict[str, Any] | None = None
        #: A full snapshot was asked for and has not come yet: ask only once.
        self.resyncing = False

    def full(self, message: dict[str, Any]) -> None:
        """A ``stats_update``: held as it is (a copy: the caller may change theirs)."""
        seq, data = message.get("seq"), message.get("data")
        if _is_seq(seq) and isinstance(data, dict):
            self.seq, self._data = seq, copy.deepcopy(data)
            self.resyncing = False
        else:  # no seq (a server without deltas, or an odd frame): nothing to patch
            self.seq, self._data = None, None

    def apply(self, message: dict[str, Any]) -> dict[str, Any] | None:
        """The ``stats_update`` a ``stats_delta`` makes of the held snapshot, or ``None``
        if it cannot apply (the held one is kept as it was)."""
        seq, base, patch = message.get("seq"), message.get("base"), message.get("data")
        if self._data is None or not _is_seq(seq) or base != self.seq:
            return None
        if not isinstance(patch, dict):
            return None
        try:
            merged = merge_patch(self._data, patch)
        except RecursionError:
            return None
        self.seq, self._data = seq, merged
        return {
            "type": "stats_update",
            "seq": seq,
            "data": copy.deepcopy(merged),
            "timestamp": message.get("timestamp"),
        }


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
