"""A Python client for the adminstats WebSocket (docs/PROTOCOL.md).

:class:`AdminStatsClient` keeps one connection open across network faults and server
restarts: it answers the server's heartbeat, refreshes its token when asked, resubscribes
with ``since`` after a reconnect so missed audit actions are replayed, and drops the
duplicates that a replay and live pushes can produce. It needs the ``websockets`` package.

.. code-block:: python

    async with AdminStatsClient("wss://example.com/admin/ws", token=token) as client:
        async for message in client:
            print(message["type"])
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from ._backoff import backoff_delay
from .errors import AdminStatsError
from .protocol import AUTH_SERVER_UNAVAILABLE, SUBSCRIPTIONS, CloseCode
from .telemetry import get_logger

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "AdminStatsClient",
    "ClientError",
    "ConnectionRejected",
    "ReconnectFailed",
    "State",
    "TokenSource",
    "backoff_delay",
]

logger = get_logger("asgi_adminstats.client")

State = Literal["connecting", "connected", "reconnecting", "disconnected", "error"]
#: Returns a fresh token; a plain function runs in a worker thread (it may block).
TokenSource = Callable[[], str | Awaitable[str]]

_SEEN_IDS = 1000  # audit ids remembered for de-duplication
_QUEUE = 1000  # decoded messages waiting for the consumer; the reader waits when full
_CLOSE_TIMEOUT = 3.0
_ABNORMAL_CLOSURE = 1006
# RFC 6750 b64token: anything else cannot go into the header as is.
_BEARER = re.compile(r"[A-Za-z0-9\-._~+/]+=*")
# For the log when the server gave no reason (uvicorn's shutdown sends a bare 1012).
_CLOSE_NAMES: dict[int, str] = {
    **{code: code.reason for code in CloseCode},
    _ABNORMAL_CLOSURE: "connection lost without a close frame",
    1012: "service restart",
}
_MISSING_WEBSOCKETS = "AdminStatsClient needs the 'websockets' package: pip install websockets"


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


@dataclass(frozen=True)
class _Ended:
    """How one connection (or attempt) ended."""

    description: str  # for logs and errors; never contains the token
    code: int | None = None  # close code
    reason: str = ""
    status: int | None = None  # HTTP status of a refused upgrade
    retry_after: float = 0.0
    connected: bool = False  # the server had sent ``connected``


def _verdict(ended: _Ended) -> Literal["auth", "fatal", "retry"]:
    """PROTOCOL.md section 4: 4401/4403 do not retry with the same token; anything else
    (1013, 4429, 4008, 1001, 1006, 1011, network errors) backs off and retries."""
    if ended.code is not None:
        if ended.code in (CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN):
            return "retry" if ended.reason.startswith(AUTH_SERVER_UNAVAILABLE) else "auth"
        return "retry"
    if ended.status is not None:
        if ended.status == 401:  # a proxy in front that checks the token
            return "auth"
        if ended.status in (408, 425, 429) or ended.status >= 500:
            return "retry"
        return "fatal"  # 403 forbidden origin, 404 wrong path, 426: a configuration error
    return "retry"


class _RecentIds:
    """The last ``limit`` ids, oldest forgotten first (ids increase)."""

    def __init__(self, limit: int = _SEEN_IDS) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._limit = limit

    def add(self, action_id: str) -> bool:
        """Remember ``action_id``; False if it was already there."""
        if action_id in self._ids:
            return False
        self._ids[action_id] = None
        if len(self._ids) > self._limit:
            self._ids.popitem(last=False)
        return True

    def __len__(self) -> int:
        return len(self._ids)


class _End:
    """Wakes a consumer waiting on the queue when the client stops."""


def _check_token(token: object) -> str:
    if not isinstance(token, str) or not _BEARER.fullmatch(token):
        # Never echo the value: it may be a token with a stray newline.
        raise ValueError("the token must be a non-empty string of Bearer token characters")
    return token


class _RedactAuthorization(logging.Filter):
    """websockets logs every handshake header at DEBUG: never the token."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "[redacted]")
        return True


# The wire log of our connections (websockets' own, under our name), with the filter.
_wire_logger = get_logger("asgi_adminstats.client.websockets")
_wire_logger.addFilter(_RedactAuthorization())


def _require_websockets() -> None:
    try:
        import websockets.asyncio.client  # noqa: F401
    except ImportError as exc:
        raise ImportError(_MISSING_WEBSOCKETS) from exc


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
    ) -> None:
        _require_websockets()
        from websockets.exceptions import InvalidURI
        from websockets.uri import parse_uri

        try:
            parse_uri(url)
        except (InvalidURI, ValueError):
            # The URL is not echoed: someone may have put a token in its query.
            raise ValueError("url must be a ws:// or wss:// URL") from None
        if token is None and get_token is None:
            raise ValueError("give token or get_token")
        self._subscriptions = tuple(dict.fromkeys(subscriptions))
        unknown = set(self._subscriptions) - set(SUBSCRIPTIONS)
        if unknown or not self._subscriptions:
            raise ValueError(f"subscriptions must be among {list(SUBSCRIPTIONS)}")
        if not 0 < reconnect_interval <= max_reconnect_interval:
            raise ValueError("need 0 < reconnect_interval <= max_reconnect_interval")
        if max_reconnect_attempts is not None and max_reconnect_attempts < 0:
            raise ValueError("max_reconnect_attempts must be >= 0 (or None: unlimited)")
        if open_timeout <= 0:
            raise ValueError("open_timeout must be > 0")
        self.url = url
        self._token = None if token is None else _check_token(token)
        self._get_token = get_token
        self._base = reconnect_interval
        self._cap = max_reconnect_interval
        self._max_attempts = max_reconnect_attempts
        self._origin = origin
        self._open_timeout = open_timeout
        #: See :data:`State`; "disconnected" before ``start()`` and after ``close()``.
        self.state: State = "disconnected"
        #: Connections re-established after the first one.
        self.reconnects = 0
        #: The server's id for the current connection (``None`` while not connected).
        self.connection_id: str | None = None
        self._last_id: str | None = None
        self._seen = _RecentIds()
        self._queue: asyncio.Queue[dict[str, Any] | _End] = asyncio.Queue(_QUEUE)
        self._runner: asyncio.Task[None] | None = None
        self._helpers: set[asyncio.Task[None]] = set()
        self._finished = False
        self._error: Exception | None = None
        self._ever_connected = False
        self._connected_now = False

    @property
    def last_audit_id(self) -> str | None:
        """The highest audit id seen (pushes and ``recentActions``): the next ``since``."""
        return self._last_id

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
            verdict = _verdict(ended)
            if verdict == "auth":
                if self._get_token is None or auth_retried:
                    raise ConnectionRejected(ended.reason, code=ended.code, status=ended.status)
                auth_retried = True
                try:
                    self._token = await self._fetch_token()
                except Exception as exc:
                    raise ConnectionRejected(
                        ended.reason, code=ended.code, status=ended.status
                    ) from exc
                # A new token is the fix, not time: retry at once.
                logger.warning("%s; retrying once with a new token", ended.description)
                continue
            if verdict == "fatal":
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

    async def _connect_once(self) -> _Ended:
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
        from websockets.typing import Origin

        try:
            if self._token is None:
                self._token = await self._fetch_token()
        except Exception as exc:
            return _Ended(f"get_token failed: {type(exc).__name__}: {exc}")
        try:
            ws = await connect(
                self.url,
                additional_headers={"Authorization": f"Bearer {self._token}"},
                origin=None if self._origin is None else Origin(self._origin),
                open_timeout=self._open_timeout,
                close_timeout=_CLOSE_TIMEOUT,
                logger=_wire_logger,
            )
        except InvalidStatus as exc:
            response = exc.response
            text = _excerpt(response.body.decode("utf-8", "replace") if response.body else "")
            return _Ended(
                f"upgrade refused: HTTP {response.status_code} {text}".rstrip(),
                status=response.status_code,
                reason=text,
                retry_after=_retry_after(response.headers.get("Retry-After")),
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            return _Ended(f"cannot connect: {type(exc).__name__}: {exc}")
        self._connected_now = False
        code, reason = _ABNORMAL_CLOSURE, ""
        try:
            while True:
                message = _decode(await ws.recv())
                if message is None:
                    continue
                message = await self._handle(ws, message)
                if message is not None:
                    await self._queue.put(message)
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                code, reason = exc.rcvd.code, exc.rcvd.reason
        finally:
            await self._cancel_helpers()
            await ws.close()  # bounded by close_timeout; 1000 when we are the one closing
            self.connection_id = None
            if self._ever_connected:
                self.state = "reconnecting"
        what = f"connection closed {code} ({reason or _CLOSE_NAMES.get(code, 'no reason')})"
        return _Ended(what, code=code, reason=reason, connected=self._connected_now)

    async def _fetch_token(self) -> str:
        get = self._get_token
        if get is None:
            raise RuntimeError("no get_token")
        result: str | Awaitable[str]
        if inspect.iscoroutinefunction(get):
            result = await get()
        else:
            result = await asyncio.to_thread(get)  # it may block: keep it off the loop
        if inspect.isawaitable(result):
            result = await result
        return _check_token(result)

    # --- messages -------------------------------------------------------------------

    async def _handle(self, ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any] | None:
        """Act on one server message; what to yield, or ``None`` to swallow it."""
        kind = message.get("type")
        if kind == "ping":
            await ws.send(_encode({"type": "pong"}))
            return None
        if kind == "token_expiring" and self._get_token is not None:
            self._spawn(self._refresh(ws))
            return None
        if kind == "connected":
            await self._on_connected(ws, message)
        elif kind == "audit_action":
            data = message.get("data")
            action_id = data.get("id") if isinstance(data, Mapping) else None
            if action_id is not None:
                if not self._seen.add(str(action_id)):
                    logger.debug("dropped a repeated audit action %s", action_id)
                    return None
                self._note_id(action_id)
        elif kind == "stats_update":
            for action in _recent_actions(message):
                self._note_id(action.get("id"))
        return message

    async def _on_connected(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        # `since` is taken now, before this connection's first snapshot moves it on:
        # the snapshot may list actions recorded while we were away.
        since = self._last_id if "notifications" in self._subscriptions else None
        if self._ever_connected:
            self.reconnects += 1
        self._ever_connected = self._connected_now = True
        connection_id = message.get("connectionId")
        self.connection_id = connection_id if isinstance(connection_id, str) else None
        self.state = "connected"
        offered = message.get("subscriptions")
        current = set(offered) if isinstance(offered, list) else set(SUBSCRIPTIONS)
        unwanted = [name for name in SUBSCRIPTIONS if name in current - set(self._subscriptions)]
        if unwanted:
            await ws.send(_encode({"type": "unsubscribe", "subscriptions": unwanted}))
        # Only what is missing, plus `notifications` for the replay: naming `stats` again
        # would repeat the snapshot the server has just sent.
        names = [
            name
            for name in self._subscriptions
            if name not in current or (since is not None and name == "notifications")
        ]
        if names:
            subscribe: dict[str, Any] = {"type": "subscribe", "subscriptions": names}
            if since is not None:
                subscribe["since"] = since
            await ws.send(_encode(subscribe))

    def _note_id(self, action_id: object) -> None:
        key = str(action_id)
        # The server takes ASCII digits only as `since` (at most 18 of them); isdigit()
        # alone takes "²", which int() then refuses.
        if not (key.isascii() and key.isdigit()) or len(key) > 18:
            return
        if self._last_id is None or int(key) > int(self._last_id):
            self._last_id = key

    async def _refresh(self, ws: ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            token = await self._fetch_token()
        except Exception as exc:
            # The server closes 4401 at expiry; then one more token is asked for.
            logger.warning("token refresh failed: %s", type(exc).__name__)
            return
        self._token = token
        with contextlib.suppress(ConnectionClosed):
            await ws.send(_encode({"type": "auth", "token": token}))

    def _spawn(self, job: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(job, name="adminstats-client-refresh")
        self._helpers.add(task)
        task.add_done_callback(self._helpers.discard)

    async def _cancel_helpers(self) -> None:
        helpers = list(self._helpers)
        for task in helpers:
            task.cancel()
        if helpers:
            await asyncio.wait(helpers)


def _decode(raw: str | bytes) -> dict[str, Any] | None:
    """A server message, or ``None`` for a frame that is not a JSON object."""
    if isinstance(raw, bytes):
        logger.debug("ignored a binary frame")
        return None
    try:
        message = json.loads(raw)
    except ValueError:
        logger.debug("ignored a frame that is not JSON")
        return None
    return message if isinstance(message, dict) else None


def _encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"))


def _recent_actions(message: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    data = message.get("data")
    activity = data.get("activity") if isinstance(data, Mapping) else None
    actions = activity.get("recentActions") if isinstance(activity, Mapping) else None
    if not isinstance(actions, list):
        return []
    return [action for action in actions if isinstance(action, Mapping)]


def _retry_after(value: str | None) -> float:
    """Retry-After in seconds (the server sends seconds; dates are not worth parsing)."""
    try:
        return max(0.0, float(value)) if value else 0.0
    except ValueError:
        return 0.0


def _excerpt(text: str, limit: int = 200) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"
