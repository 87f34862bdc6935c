"""One snapshot as this instance delivers it: today's frame for clients without deltas,
the same frame with its ``seq`` for those with, and the ``stats_delta`` from the
snapshot this instance delivered before.

Each frame is encoded at most once per tick, and only when some session needs it; the
patch is computed once, for every session that holds the base.
"""

from __future__ import annotations

import json
from typing import Any

from .. import protocol

__all__ = ["StatsTick"]


class StatsTick:
    __slots__ = ("_delta", "_full", "_message", "_previous", "base", "seq", "text")

    def __init__(self, seq: int, text: str) -> None:
        self.seq = seq
        #: The frame as published (no ``seq``): what sessions without deltas get.
        self.text = text
        #: The ``seq`` of the snapshot delivered before this one (set by ``follow``).
        self.base: int | None = None
        self._previous: StatsTick | None = None
        self._full: str | None = None
        self._delta: str | bool | None = False  # False: not computed yet
        self._message: dict[str, Any] | bool | None = False

    def follow(self, previous: StatsTick | None) -> None:
        """This tick is fanned out after ``previous``: the delta's base."""
        self._previous = previous
        self.base = None if previous is None else previous.seq
        if previous is not None:
            previous._previous = None  # only one step back is ever needed

    @property
    def full(self) -> str:
        """The full ``stats_update`` with ``seq``."""
        if self._full is None:
            spliced = protocol.with_seq(self.text, self.seq)
            if spliced is None:  # not our encoder's text: decode and encode again
                message = self._decoded()
                spliced = (
                    self.text
                    if message is None
                    else protocol.encode(
                        {"type": "stats_update", "seq": self.seq, **_without_type(message)}
                    )
                )
            self._full = spliced
        return self._full

    @property
    def delta(self) -> str | None:
        """The ``stats_delta`` from ``base``; ``None`` when there is none (no base, or
        no patch reproduces this snapshot exactly)."""
        if self._delta is False:
            self._delta = self._compute_delta()
            self._previous = None
        assert self._delta is not True
        return self._delta

    def _compute_delta(self) -> str | None:
        previous = self._previous
        if previous is None or self.base is None:
            return None
        old, new = previous._decoded(), self._decoded()
        if old is None or new is None:
            return None
        before, after = old.get("data"), new.get("data")
        timestamp = new.get("timestamp")
        if not isinstance(before, dict) or not isinstance(after, dict):
            return None
        patch = protocol.diff(before, after)
        # Checked, not assumed: only a patch that rebuilds the snapshot exactly goes out.
        if patch is None or not protocol.same(protocol.merge_patch(before, patch), after):
            return None
        return protocol.stats_delta(
            seq=self.seq, base=self.base, patch=patch, timestamp=str(timestamp)
        )

    def counts_nobody(self) -> bool:
        """Whether it says no admin is connected (``online.connections`` 0)."""
        data = (self._decoded() or {}).get("data")
        online = data.get("online") if isinstance(data, dict) else None
        return isinstance(online, dict) and online.get("connections") == 0

    def _decoded(self) -> dict[str, Any] | None:
        if self._message is False:
            try:
                message = json.loads(self.text)
            except ValueError:
                message = None
            self._message = message if isinstance(message, dict) else None
        assert self._message is not True
        return self._message


def _without_type(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key not in ("type", "seq")}
