"""The server process's garbage collections, for the ``gc`` control command.

Installed in each server process (bench/servers.py): every collection's generation and
pause, through ``gc.callbacks``. ``gc`` answers JSON: per generation the collections
and the total and longest pause (ms) since start, the objects the collector tracks,
and whether ``gc.freeze()`` was applied (``--gc-freeze``).
"""

from __future__ import annotations

import gc
import json
import time
from typing import Any

__all__ = ["answer", "collect", "freeze", "install"]

_started: list[float] = [0.0]
_counts = [0, 0, 0]
_total = [0.0, 0.0, 0.0]
_longest = [0.0, 0.0, 0.0]
_frozen: list[int] = [0]
_full: list[float] = []  # every full (generation 2) collection's pause, ms: they are few


def _callback(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _started[0] = time.perf_counter()
        return
    generation = int(info["generation"])
    pause = (time.perf_counter() - _started[0]) * 1e3
    _counts[generation] += 1
    _total[generation] += pause
    _longest[generation] = max(_longest[generation], pause)
    if generation == 2:
        _full.append(round(pause, 2))


def install() -> None:
    if _callback not in gc.callbacks:
        gc.callbacks.append(_callback)


def collect() -> str:
    """A full collection now (the harness settles the heap before a measured series:
    the one a server is due after thousands of connections came in lands there, not
    in the series). Answers its pause in ms."""
    started = time.perf_counter()
    gc.collect()
    return f"{(time.perf_counter() - started) * 1e3:.1f}"


def freeze() -> int:
    """``gc.freeze()`` now (what a host would do after its start-up): objects frozen."""
    gc.collect()
    gc.freeze()
    _frozen[0] = gc.get_freeze_count()
    return _frozen[0]


def answer() -> str:
    return json.dumps(
        {
            "collections": list(_counts),
            "pause_total_ms": [round(v, 2) for v in _total],
            "pause_max_ms": [round(v, 2) for v in _longest],
            "full_pauses_ms": _full,
            "tracked_objects": len(gc.get_objects()),
            "frozen": _frozen[0],
            "threshold": list(gc.get_threshold()),
        }
    )
