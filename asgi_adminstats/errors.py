"""The one base of every exception this package raises.

No imports: every module can derive from it without an import cycle.
"""

from __future__ import annotations

__all__ = ["AdminStatsError"]


class AdminStatsError(Exception):
    """Base of the exceptions defined by asgi_adminstats: ``except AdminStatsError``
    catches them all. Each also keeps the built-in base it had (``SettingsError`` is a
    ``ValueError``, ``StartupError`` a ``RuntimeError``, ...)."""
