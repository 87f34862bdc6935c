"""The Origin allow-list (Starlette's CORSMiddleware skips WebSocket scopes)."""

from __future__ import annotations

from starlette.types import Scope

from .settings import Settings

__all__ = ["OriginGuard"]


class OriginGuard:
    """Exact ``scheme://host[:port]`` match (case-insensitive); ``*`` only if configured."""

    def __init__(self, settings: Settings) -> None:
        self._allowed = frozenset(o.lower() for o in settings.allowed_origins)
        self._any = "*" in self._allowed
        self._allow_missing = settings.allow_missing_origin

    def allows(self, scope: Scope) -> bool:
        origin = next((v for k, v in scope.get("headers") or () if k == b"origin"), None)
        if origin is None:
            return self._allow_missing
        return self._any or origin.decode("latin-1").lower() in self._allowed
