from __future__ import annotations

from ..protocol import CloseCode

__all__ = ["AuthError"]


class AuthError(Exception):
    """Authentication failed; ``code`` and ``reason`` are what the client is closed with.

    The reason is safe to send: it never contains the token or verifier details.
    """

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason
