"""Capped exponential backoff with full jitter, for every retry loop of the package
(the client's reconnects, the bus backends' reconnects)."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int, *, base: float, cap: float, rand: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with full jitter: uniform in ``[0, min(cap, base * 2**attempt)]``.

    Full jitter spreads the reconnects of many dashboards (or workers) after a restart
    instead of bringing them back in waves. ``attempt`` counts from 0 (the first retry).
    """
    ceiling = min(cap, base * 2.0 ** min(max(attempt, 0), 64))  # no float overflow
    return ceiling * rand()
