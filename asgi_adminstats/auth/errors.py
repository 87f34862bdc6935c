from __future__ import annotations

from ..errors import AdminStatsError
from ..protocol import AUTH_SERVER_UNAVAILABLE, INVALID_TOKEN, TOKEN_EXPIRED, CloseCode

__all__ = ["AuthError", "expired", "forbidden", "invalid", "unavailable"]


class AuthError(AdminStatsError):
    """Authentication failed; ``code`` and ``reason`` are what the client is closed with.

    The reason is safe to send: it never contains the token or verifier details.
    ``category`` is for the connection log (why, in one word).
    """

    def __init__(self, code: CloseCode, reason: str, category: str = "invalid") -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.category = category


def invalid(category: str = "invalid") -> AuthError:
    return AuthError(CloseCode.UNAUTHORIZED, INVALID_TOKEN, category)


def expired() -> AuthError:
    return AuthError(CloseCode.UNAUTHORIZED, TOKEN_EXPIRED, "expired")


def unavailable() -> AuthError:
    """The token could not be checked (the identity provider is unreachable)."""
    return AuthError(CloseCode.UNAUTHORIZED, AUTH_SERVER_UNAVAILABLE, "unavailable")


def forbidden() -> AuthError:
    return AuthError(CloseCode.FORBIDDEN, CloseCode.FORBIDDEN.reason, "not_admin")
