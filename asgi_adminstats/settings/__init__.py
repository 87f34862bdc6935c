"""One frozen, validated configuration object for the whole component.

Every setting is checked at construction so a bad value fails at start-up with a
message naming the setting (and, from :meth:`Settings.from_env`, its variable).
"""

from ._env import ENV_PREFIX
from ._rules import (
    ALGORITHMS,
    DEFAULT_ALGORITHMS,
    FORWARDED_HEADERS,
    HISTORY_POINTS_MAX,
    IDENTIFIER,
    KEY_TYPES,
    SettingsError,
)
from ._settings import Settings

__all__ = [
    "ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "ENV_PREFIX",
    "FORWARDED_HEADERS",
    "HISTORY_POINTS_MAX",
    "IDENTIFIER",
    "KEY_TYPES",
    "Settings",
    "SettingsError",
]
