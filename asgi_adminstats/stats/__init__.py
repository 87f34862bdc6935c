"""Collectors and the stats tick."""

from .base import Collector, CollectorFailure
from .database import DatabaseHealthCollector, DatabaseStatsCollector
from .engine import StatsEngine
from .system import SystemCollector

__all__ = [
    "Collector",
    "CollectorFailure",
    "DatabaseHealthCollector",
    "DatabaseStatsCollector",
    "StatsEngine",
    "SystemCollector",
]
