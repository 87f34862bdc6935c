"""Who a verified token belongs to, and whether that is an admin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..settings import Settings

__all__ = ["Identity", "is_admin", "scopes_of"]


@dataclass(frozen=True)
class Identity:
    """A verified admin: the subject, when the token expires, and the claims (kept
    server-side only)."""

    sub: str
    claims: Mapping[str, Any] = field(repr=False)

    @property
    def exp(self) -> float | None:
        exp = self.claims.get("exp")
        return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


def scopes_of(claims: Mapping[str, Any]) -> set[str]:
    """OAuth scopes: ``scope`` as a space-separated string (RFC 8693/9068) or ``scp`` list."""
    scopes: set[str] = set()
    scope = claims.get("scope")
    if isinstance(scope, str):
        scopes.update(scope.split())
    scp = claims.get("scp")
    if isinstance(scp, list):
        scopes.update(s for s in scp if isinstance(s, str))
    return scopes


def is_admin(claims: Mapping[str, Any], settings: Settings) -> bool:
    if settings.admin_rule is not None:
        return bool(settings.admin_rule(claims))
    if claims.get(settings.role_claim) == settings.admin_role:
        return True
    roles = claims.get(settings.roles_claim)
    if isinstance(roles, list | tuple) and settings.admin_role in roles:
        return True
    return settings.admin_scope is not None and settings.admin_scope in scopes_of(claims)
