from __future__ import annotations

from ..protocol import CloseCode

__all__ = ["EXPIRED", "INVALID", "MISSING", "UNAVAILABLE", "AuthError", "forbidden", "invalid"]

INVALID = "unauthorized: invalid token"
EXPIRED = "unauthorized: token expired"
MISSING = "unauthorized: missing token"
UNAVAILABLE = "unauthorized: authorization server unavailable"


class AuthError(Exception):
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
    return AuthError(CloseCode.UNAUTHORIZED, INVALID, category)


def forbidden() -> AuthError:
    return AuthError(CloseCode.FORBIDDEN, CloseCode.FORBIDDEN.reason, "not_admin")
