"""AdminStatsClient: the public API, the reconnect loop with backoff, the message queue."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Literal

from .._backoff import backoff_delay
from ..protocol import SUBSCRIPTIONS
from ..telemetry import get_logger
from ._connection import Connection, Target
from ._errors import ClientError, ConnectionRejected, ReconnectFailed
from ._ids import AuditIds
from ._outcome import Ended, verdict
from ._requests import ConnectionLost
from ._token import Token, TokenSource
from ._wire import require_websockets

__all__ = ["AdminStatsClient", "State"]

logger = get_logger("asgi_adminstats.client")

State = Literal["connecting", "connected", "reconnecting", "disconnected", "error"]

_QUEUE = 1000  # decoded messages waiting for the consumer; the reader waits when full


class _End:
    """Wakes a consumer waiting on the queue when the client stops."""


class AdminStatsClient:
    """A reconnecting client: ``async with AdminStatsClient(url, token=...) as client:
    async for message in client: ...`` yields the server's messages as dicts.

    Handled here and not yielded: ``ping`` (answered with ``pong``), ``token_expiring``
    when ``get_token`` is given (answered with ``auth`` and a fresh token; without
    ``get_token`` it is yielded and the server closes 4401 at expiry), and repeated
    ``audit_action`` ids. After a reconnect it sends ``subscribe`` with ``since`` (the
    last audit id seen) so actions recorded meanwhile arrive with ``"replayed": true``.

    Iteration raises :class:`ConnectionRejected` on 4401/4403 (after one retry with a
    token from ``get_token``, when given) and on refusals a retry cannot fix, and
    :class:`ReconnectFailed` after ``max_reconnect_attempts`` failed attempts in a row
    (``None``: never give up; ``0``: never reconnect). The token travels in the
    ``Authorization`` header only. Iterate promptly: while the consumer lags, the
    reader waits, and the server eventually closes the connection (then replays).

    ``deltas=True`` asks the server for ``stats_delta`` patches instead of a full
    snapshot every tick; they are applied here, and iteration still yields each
    snapshot whole as a ``stats_update`` (with its ``seq``). A server without deltas
    goes on sending full snapshots.

    ``await client.history()`` asks for the server's snapshot history (the recent
    snapshots' figures, for charts); its reply is returned there, not yielded.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        get_token: TokenSource | None = None,
        subscriptions: Iterable[str] = SUBSCRIPTIONS,
        reconnect_interval: float = 1.0,
        max_reconnect_interval: float = 30.0,
        max_reconnect_attempts: int | None = None,
        origin: str | None = None,
        open_timeout: float = 10.0,
        deltas: bool = False,
    ) -> None:
        require_websockets()
        from websockets.exceptions import InvalidURI
        from websockets.uri import parse_uri

        try:
            parse_uri(url)
        except (InvalidURI, ValueError):
            # The URL is not echoed: someone may have put a token in its query.
            raise ValueError("url must be a ws:// or wss:// URL") from None
        if token is None and get_token is None:
            raise ValueError("give token or get_token")
        names = tuple(dict.fromkeys(subscriptions))
        unknown = set(names) - set(SUBSCRIPTIONS)
        if unknown or not names:
            raise ValueError(f"subscriptions must be among {list(SUBSCRIPTIONS)}")
        if not 0 < reconnect_interval <= max_reconnect_interval:
            raise ValueError("need 0 < reconnect_interval <= max_reconnect_interval")
        if max_reconnect_attempts is not None and max_reconnect_attempts < 0:
            raise ValueError("max_reconnect_attempts must be >= 0 (or None: unlimited)")
        if open_timeout <= 0:
            raise ValueError("open_timeout must be > 0")
        self.url = url
        self._token = Token(token, get_token)
        self._target = Target(url, names, origin, open_timeout, deltas)
        self._base = reconnect_interval
        self._cap = max_reconnect_interval
        self._max_attempts = max_reconnect_attempts
        #: See :data:`State`; "disconnected" before ``start()`` and after ``close()``.
        self.state: State = "disconnected"
        #: Connections re-established after the first one.
        self.reconnects = 0
        #: The server's id for the current connection (``None`` while not connected).
        self.connection_id: str | None = None
        self._ids = AuditIds()
        self._queue: asyncio.Queue[dict[str, Any] | _End] = asyncio.Queue(_QUEUE)
        self._runner: asyncio.Task[None] | None = None
        self._finished = False
        self._error: Exception | None = None
        self._ever_connected = False
        self._connection: Connection | None = None
        self._live = asyncio.Event()  # connected, or stopped for good: history() looks

    @property
    def last_audit_id(self) -> str | None:
        """The highest audit id seen (pushes and ``recentActions``): the next ``since``."""
        return self._ids.last

    async def history(self, since: float | None = None) -> dict[str, Any]:
        """The server's ``history`` message (PROTOCOL.md): ``times`` (epoch ms, oldest
        first), ``series`` (each figure's values at those times by dotted path, such as
        ``online.users``; ``None`` where a snapshot had none) and ``interval``.

        ``since`` (epoch ms): only the snapshots after it. Waits for a connection (bound
        the wait with ``asyncio.timeout``), and asks again on the next one if the
        connection ends first. Raises :class:`HistoryUnavailable` when the server keeps no
        history, :class:`ClientError` once the client has stopped.
        """
        if self._runner is None:
            raise RuntimeError("use `async with AdminStatsClient(...)` or await start() first")
        while True:
            await self._live.wait()
            connection = self._connection
            if self._finished or connection is None:
                raise ClientError("the client is not running")
            try:
                return await connection.request_history(since)
            except ConnectionLost:
                await connection.finished.wait()  # then the next connection is asked

    # --- lifecycle ------------------------------------------------------------------

    async def start(self) -> None:
        """Start connecting in the background (``async with`` does this)."""
        if self._runner is not None or self._finished:
            raise RuntimeError("an AdminStatsClient runs once: make a new one")
        self.state = "connecting"
        self._runner = asyncio.create_task(self._run(), name="adminstats-client")

    async def close(self) -> None:
        """Close the connection and stop every task of this client; idempotent."""
        runner = self._runner
        if runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait({runner})  # not gather: the caller's own cancel must propagate
        if self.state != "error":
            self.state = "disconnected"
        self._stop()

    async def __aenter__(self) -> AdminStatsClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> AdminStatsClient:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._runner is None:
            raise RuntimeError("use `async with AdminStatsClient(...)` or await start() first")
        while True:
            if self._finished and self._queue.empty():
                if self._error is not None:
                    raise self._error
                raise StopAsyncIteration
            item = await self._queue.get()
            if not isinstance(item, _End):
                return item

    def _stop(self) -> None:
        self._finished = True
        self._live.set()  # a history() waiting for a connection gives up
        self.connection_id = None
        with contextlib.suppress(asyncio.QueueFull):  # a full queue wakes nobody anyway
            self._queue.put_nowait(_End())

    # --- connecting -----------------------------------------------------------------

    async def _run(self) -> None:
        try:
            await self._connect_forever()
        except Exception as exc:  # ClientError, or a bug: either way iteration raises it
            self._error = exc
            self.state = "error"
        finally:
            self._stop()

    async def _connect_forever(self) -> None:
        retries = 0  # reconnection attempts since the last `connected`
        auth_retried = False
        while True:
            ended = await self._connect_once()
            if ended.connected:
                retries = 0
                auth_retried = False
            outcome = verdict(ended)
            if outcome == "auth":
                if self._token.source is None or auth_retried:
                    raise ConnectionRejected(ended.reason, code=ended.code, status=ended.status)
                auth_retried = True
                try:
                    self._token.value = await self._token.fetch()
                except Exception as exc:
                    raise ConnectionRejected(
                        ended.reason, code=ended.code, status=ended.status
                    ) from exc
                # A new token is the fix, not time: retry at once.
                logger.warning("%s; retrying once with a new token", ended.description)
                continue
            if outcome == "fatal":
                raise ConnectionRejected(ended.reason, code=ended.code, status=ended.status)
            if self._max_attempts is not None and retries >= self._max_attempts:
                raise ReconnectFailed(
                    retries,
                    ended.description,
                    code=ended.code,
                    reason=ended.reason,
                    status=ended.status,
                )
            delay = max(backoff_delay(retries, base=self._base, cap=self._cap), ended.retry_after)
            retries += 1
            logger.warning(
                "%s; reconnecting in %.1f s (attempt %d%s)",
                ended.description,
                delay,
                retries,
                "" if self._max_attempts is None else f" of {self._max_attempts}",
            )
            await asyncio.sleep(delay)

    async def _connect_once(self) -> Ended:
        connection = Connection(
            self._target, self._token, self._ids, self._queue.put, self._opened, self._closed
        )
        self._connection = connection
        try:
            return await connection.run()
        finally:
            self._connection = None

    def _opened(self, connection_id: str | None) -> None:
        """The server sent ``connected`` (called before the resubscription is sent)."""
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = True
        self.connection_id = connection_id
        self.state = "connected"
        self._live.set()

    def _closed(self) -> None:
        """The socket of a connection is closed."""
        self._live.clear()
        self.connection_id = None
        if self._ever_connected:
            self.state = "reconnecting"
