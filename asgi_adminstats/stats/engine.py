"""One snapshot per tick from all collectors, with per-source freshness in ``meta``."""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..protocol import utc_timestamp
from ..telemetry import get_logger
from .base import Collector, CollectorFailure
from .database import DatabaseHealthCollector, DatabaseStatsCollector

__all__ = ["StatsEngine", "empty_snapshot"]

logger = get_logger("asgi_adminstats.stats")

_COUNTING = (DatabaseHealthCollector, DatabaseStatsCollector)


def empty_snapshot() -> dict[str, Any]:
    """The seed's shape with nothing known yet: a failing source leaves these nulls."""
    return {
        "online": {"users": None, "players": None, "connections": 0},
        "totals": {"players": None, "villages": None},
        "activity": {"recentActions": []},
        "system": {"database": {"status": "down", "latency": None}, "memory": None, "uptime": None},
    }


def _merge(into: dict[str, Any], part: Mapping[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, Mapping) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


class StatsEngine:
    def __init__(self, collectors: Sequence[Collector], *, instance: str, timeout: float) -> None:
        names = [c.name for c in collectors]
        if len(set(names)) != len(names):
            raise ValueError(f"collector names must be unique, got {names}")
        self._collectors = list(collectors)
        self._instance = instance
        self._timeout = timeout
        self._last: dict[str, Mapping[str, Any]] = {}
        self._failing: set[str] = set()
        self.failures: dict[str, int] = dict.fromkeys(names, 0)  # for the metrics

    @property
    def queries(self) -> int:
        """Database queries the package's own collectors ran so far (``/health``'s
        ``statsQueries``: the cluster tests check it does not grow with instances)."""
        return sum(c.queries for c in self._collectors if isinstance(c, _COUNTING))

    @property
    def failing(self) -> list[str]:
        """The collectors whose last run failed (``/health``'s ``stats.failing``)."""
        return sorted(self._failing)

    async def snapshot(
        self,
        *,
        connections: int | Callable[[], int],
        meta: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Run every collector concurrently (each under the timeout) and merge them.

        ``connections`` is ``online.connections``: a number, or a function called once
        the collectors are done (the count as of ``collectedAt``); ``meta`` adds fields
        to ``meta``.
        """
        started = time.perf_counter()
        results = await asyncio.gather(*(self._run(c) for c in self._collectors))
        data = empty_snapshot()
        sources: dict[str, Any] = {}
        stale = False
        for collector, (part, source, is_stale) in zip(self._collectors, results, strict=True):
            if part is not None:
                _merge(data, part)
            sources[collector.name] = source
            stale = stale or is_stale
        data["online"]["connections"] = connections() if callable(connections) else connections
        data["meta"] = {
            "instance": self._instance,
            "collectedAt": utc_timestamp(),
            "durationMs": round((time.perf_counter() - started) * 1000, 1),
            "stale": stale,
            "sources": sources,
            **(meta or {}),
        }
        return data

    async def _run(
        self, collector: Collector
    ) -> tuple[Mapping[str, Any] | None, dict[str, Any], bool]:
        name = collector.name
        started = time.perf_counter()
        partial: Mapping[str, Any] | None = None
        try:
            part = await asyncio.wait_for(collector.collect(), self._timeout)
        except CollectorFailure as exc:
            reason, partial = exc.reason, exc.partial
            self._log_failure(name, reason, exc.__cause__)
        except TimeoutError:
            reason = f"timeout after {self._timeout:g}s"
            self._log_failure(name, reason, None)
        except Exception as exc:
            reason = f"error: {type(exc).__name__}"
            self._log_failure(name, reason, exc)
        else:
            if name in self._failing:
                self._failing.discard(name)
                logger.info("collector %r recovered", name)
            self._last[name] = part
            return part, {"ok": True, "ms": _ms(started)}, False
        source = {"ok": False, "ms": _ms(started), "error": reason}
        if partial is not None:
            return partial, source, False
        previous = self._last.get(name)
        return previous, source, previous is not None

    def _log_failure(self, name: str, reason: str, exc: BaseException | None) -> None:
        self.failures[name] += 1
        # Once per outage with the traceback, then quietly: a dead source must not flood logs.
        if name in self._failing:
            logger.debug("collector %r still failing: %s", name, reason)
            return
        self._failing.add(name)
        logger.warning("collector %r failed: %s", name, reason, exc_info=exc)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
