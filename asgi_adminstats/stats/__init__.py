"""Collectors and the stats tick."""

from .base import Collector, CollectorFailure
from .database import DatabaseHealthCollector, DatabaseStatsCollector
from .defaults import create_engine
from .engine import StatsEngine
from .system import SystemCollector

__all__ = [
    "Collector",
    "CollectorFailure",
    "DatabaseHealthCollector",
    "DatabaseStatsCollector",
    "StatsEngine",
    "SystemCollector",
    "create_engine",
]
