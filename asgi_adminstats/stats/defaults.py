"""The engine every ``AdminStats`` runs: the package's collectors, then the host's."""

from __future__ import annotations

import time
from collections.abc import Sequence

from ..audit import AuditLog
from ..db import SqlDatabase
from ..settings import Settings
from .base import Collector
from .database import DatabaseHealthCollector, DatabaseStatsCollector
from .engine import StatsEngine
from .system import SystemCollector

__all__ = ["create_engine"]


def create_engine(
    settings: Settings, *, database: SqlDatabase, audit: AuditLog, collectors: Sequence[Collector]
) -> StatsEngine:
    deadline = settings.collector_deadline
    return StatsEngine(
        [
            SystemCollector(time.monotonic()),
            DatabaseHealthCollector(
                database,
                settings.queries,
                degraded_ms=settings.database_degraded_ms,
                timeout=deadline * 0.9,
            ),
            DatabaseStatsCollector(database, settings.queries, audit, settings.recent_actions),
            *collectors,
        ],
        instance=settings.instance_name,
        timeout=deadline,
    )
