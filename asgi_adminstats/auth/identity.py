"""Who a verified token belongs to, and whether that is an admin."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..settings import Settings
from .errors import expired, invalid

__all__ = [
    "MAX_EXP",
    "MAX_SUBJECT",
    "Identity",
    "check_issuer_and_audience",
    "is_admin",
    "scopes_of",
]

#: OIDC Core allows a ``sub`` of up to 255 ASCII characters; the same bound for any text.
MAX_SUBJECT = 255
#: 9999-12-31T23:59:59Z, the last second a ``datetime`` (so ``token_expiring``) can show.
MAX_EXP = 253_402_300_799


@dataclass(frozen=True)
class Identity:
    """A verified admin: the subject, when the token expires, and the claims (kept
    server-side only). Made by :meth:`verified`, the one place claims are checked.

    ``recheck_at``: for an introspected token, when its cached answer ends and an open
    session asks the authorization server again (None for a JWT: nothing to ask).
    """

    sub: str
    claims: Mapping[str, Any] = field(repr=False)
    recheck_at: float | None = None

    @classmethod
    def verified(cls, claims: Mapping[str, Any], *, now: float | None = None) -> Identity:
        """The identity in claims whose signature (or introspection) already checked out.

        A validly signed token may still carry claims this server cannot use: a ``sub``
        that is not a non-empty string of at most ``MAX_SUBJECT`` characters encodable as
        UTF-8 (a lone surrogate cannot be sent in ``connected``), an ``exp`` that is not
        a finite number in [0, ``MAX_EXP``] (10**400 overflows a float). Those raise
        4401 "invalid token"; an ``exp`` at or before ``now`` raises 4401 "token
        expired": no leeway on expiry, so a token is never accepted only to be closed
        at once (``jwt_leeway`` is for ``nbf``/``iat`` clock skew).
        """
        sub = claims.get("sub")
        if not _usable_subject(sub):
            raise invalid()
        try:
            exp = _expiry(claims.get("exp"))
        except ValueError:
            raise invalid() from None
        if exp is not None and exp <= (time.time() if now is None else now):
            raise expired()
        assert isinstance(sub, str)
        return cls(sub=sub, claims=claims)

    @property
    def exp(self) -> float | None:
        """When the token expires (None: it does not say); ValueError for an ``exp``
        that :meth:`verified` refuses."""
        return _expiry(self.claims.get("exp"))


def check_issuer_and_audience(claims: Mapping[str, Any], settings: Settings) -> None:
    """The rules for JWTs and introspection answers alike. With an issuer configured
    (``jwt_issuer``, else ``oidc_issuer``) ``iss`` must equal it exactly; with
    ``jwt_audience``, ``aud`` (a string, or a list of strings) must be or hold it. A
    missing claim fails too. Raises 4401 "invalid token" with the category ``issuer``
    or ``audience`` for the connection log."""
    issuer = settings.jwt_issuer or settings.oidc_issuer
    if issuer is not None and claims.get("iss") != issuer:
        raise invalid("issuer")
    audience = settings.jwt_audience
    if audience is None:
        return
    aud = claims.get("aud")
    if isinstance(aud, list) and all(isinstance(a, str) for a in aud):
        if audience not in aud:
            raise invalid("audience")
    elif aud != audience:
        raise invalid("audience")


def _usable_subject(sub: object) -> bool:
    if not isinstance(sub, str) or not 0 < len(sub) <= MAX_SUBJECT:
        return False
    try:
        sub.encode()
    except UnicodeEncodeError:
        return False
    return True


def _expiry(exp: object) -> float | None:
    if exp is None:
        return None
    # Compared before float(), which raises OverflowError for an int like 10**400; NaN
    # and the infinities fail the comparison too.
    if isinstance(exp, bool) or not isinstance(exp, int | float) or not 0 <= exp <= MAX_EXP:
        raise ValueError("exp must be a number of seconds in [0, MAX_EXP]")
    return float(exp)


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
