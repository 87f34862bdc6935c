"""The one base of every exception this package raises, and the component's lifecycle
errors.

No imports: every module can derive from it without an import cycle.
"""

from __future__ import annotations

__all__ = ["AdminStatsError", "NotStartedError", "StartupError"]


class AdminStatsError(Exception):
    """Base of the exceptions defined by asgi_adminstats: ``except AdminStatsError``
    catches them all. Each also keeps the built-in base it had (``SettingsError`` is a
    ``ValueError``, ``StartupError`` a ``RuntimeError``, ...)."""


class NotStartedError(AdminStatsError, RuntimeError):
    """An operation that needs a started component ran before ``startup()``."""


class StartupError(AdminStatsError, RuntimeError):
    """The component cannot start; the message names the setting at fault."""
