"""What iteration raises when the client stops for good, and what ``history()`` raises
when the server keeps no history."""

from __future__ import annotations

from ..errors import AdminStatsError

__all__ = ["ClientError", "ConnectionRejected", "HistoryUnavailable", "ReconnectFailed"]


class ClientError(AdminStatsError):
    """The client stopped for good; raised from iteration."""


class ConnectionRejected(ClientError):
    """The server refused this client; retrying would not help.

    ``code`` is the close code (4401 unauthorized, 4403 forbidden) with the server's
    ``reason``; for a refusal before the WebSocket upgrade ``code`` is ``None`` and
    ``status`` is the HTTP status (403 forbidden origin, 404 wrong path, ...).
    """

    def __init__(self, reason: str, *, code: int | None = None, status: int | None = None):
        self.code = code
        self.status = status
        self.reason = reason
        what = f"closed {code}" if code is not None else f"HTTP {status}"
        super().__init__(f"{what}: {reason}" if reason else what)


class ReconnectFailed(ClientError):
    """``max_reconnect_attempts`` reconnection attempts in a row failed.

    ``code`` and ``reason`` describe the last failure: a close code, or ``None`` for a
    network error or an HTTP refusal (then ``status`` is set).
    """

    def __init__(
        self,
        attempts: int,
        last: str,
        *,
        code: int | None = None,
        reason: str = "",
        status: int | None = None,
    ):
        self.attempts = attempts
        self.code = code
        self.reason = reason
        self.status = status
        super().__init__(f"gave up after {attempts} reconnection attempts; last: {last}")


class HistoryUnavailable(AdminStatsError):
    """The server keeps no snapshot history: ``code`` is ``history_disabled`` (its
    ``history_seconds`` is 0) or ``unknown_type`` (a server older than the message).

    Raised by :meth:`AdminStatsClient.history`; the client goes on running.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(f"no history: {code}: {message}")
