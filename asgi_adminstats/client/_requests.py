"""Requests a connection has sent and the server has yet to answer: ``history`` (the
only one so far). The server answers a connection's requests in the order they came,
so each reply (or refusal) settles the oldest one waiting."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

from ..errors import AdminStatsError
from ._errors import HistoryUnavailable

__all__ = ["ConnectionLost", "Pending"]

#: ``error`` codes that refuse a ``history`` request: history is off, or the server
#: predates the message.
_REFUSALS = frozenset({"history_disabled", "unknown_type"})


class ConnectionLost(AdminStatsError):
    """The connection ended before the reply came (internal: the request is sent again
    on the next connection)."""


class Pending:
    def __init__(self) -> None:
        self._waiting: deque[asyncio.Future[dict[str, Any]]] = deque()

    def add(self) -> asyncio.Future[dict[str, Any]]:
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        return future

    def settle(self, message: dict[str, Any]) -> bool:
        """True if ``message`` answered a request (then it is not yielded)."""
        while self._waiting and self._waiting[0].done():  # its caller gave up
            self._waiting.popleft()
        if not self._waiting:
            return False
        kind = message.get("type")
        if kind == "history":
            self._waiting.popleft().set_result(message)
            return True
        code = message.get("code")
        if kind == "error" and code in _REFUSALS:
            text = str(message.get("message") or code)
            self._waiting.popleft().set_exception(HistoryUnavailable(str(code), text))
            return True
        return False

    def lost(self) -> None:
        """The connection ended: every request waiting is asked again elsewhere."""
        while self._waiting:
            future = self._waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionLost())
