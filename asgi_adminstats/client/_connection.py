"""One connection: the upgrade, then every server message until the socket closes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..protocol import DELTA_PROTOCOL, PROTOCOL, SUBSCRIPTIONS, CloseCode
from ..telemetry import get_logger
from ._ids import AuditIds
from ._outcome import Ended
from ._requests import ConnectionLost, Pending
from ._stats import HeldStats
from ._token import Token
from ._wire import decode, encode, excerpt, recent_actions, retry_after, wire_logger

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = ["Connection", "Target"]

logger = get_logger("asgi_adminstats.client")

_CLOSE_TIMEOUT = 3.0
# A history reply may pass websockets' 1 MiB default (PROTOCOL.md: about 2.3 MB at most).
_MAX_FRAME = 4 * 2**20
_ABNORMAL_CLOSURE = 1006
# For the log when the server gave no reason (uvicorn's shutdown sends a bare 1012).
_CLOSE_NAMES: dict[int, str] = {
    **{code: code.reason for code in CloseCode},
    _ABNORMAL_CLOSURE: "connection lost without a close frame",
    1012: "service restart",
}


@dataclass(frozen=True)
class Target:
    """Where to connect and what to subscribe to: the same for every connection."""

    url: str
    subscriptions: tuple[str, ...]
    origin: str | None
    open_timeout: float
    deltas: bool = False


class Connection:
    """One attempt, and once connected every message: ``ping`` is answered,
    ``token_expiring`` refreshes the token (when ``token`` has a source), ``connected``
    adjusts the subscriptions, repeated audit ids are dropped; the rest goes to
    ``deliver``, but for the replies to this connection's ``history`` requests.
    ``on_connected`` and ``on_closed`` keep the client's status current."""

    def __init__(
        self,
        target: Target,
        token: Token,
        ids: AuditIds,
        deliver: Callable[[dict[str, Any]], Awaitable[None]],
        on_connected: Callable[[str | None], None],
        on_closed: Callable[[], None],
    ) -> None:
        self._target = target
        self._token = token
        self._ids = ids
        self._deliver = deliver
        self._on_connected = on_connected
        self._on_closed = on_closed
        self._helpers: set[asyncio.Task[None]] = set()
        self.connected = False  # the server has sent ``connected``
        self._stats: HeldStats | None = None  # deltas confirmed by the server
        self._ws: ClientConnection | None = None
        self._requests = Pending()
        self.finished = asyncio.Event()  # set once the connected socket is closed

    async def run(self) -> Ended:
        """Connect and read until the connection ends; how it ended."""
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
        from websockets.typing import Origin, Subprotocol

        token, target = self._token, self._target
        try:
            if token.value is None:
                token.value = await token.fetch()
        except Exception as exc:
            return Ended(f"get_token failed: {type(exc).__name__}: {exc}")
        try:
            ws = await connect(
                target.url,
                additional_headers={"Authorization": f"Bearer {token.value}"},
                origin=None if target.origin is None else Origin(target.origin),
                open_timeout=target.open_timeout,
                # Offered: a server without deltas selects adminstats.v1 and ignores it.
                subprotocols=[Subprotocol(PROTOCOL), Subprotocol(DELTA_PROTOCOL)]
                if target.deltas
                else None,
                close_timeout=_CLOSE_TIMEOUT,
                max_size=_MAX_FRAME,
                logger=wire_logger,
            )
        except InvalidStatus as exc:
            response = exc.response
            text = excerpt(response.body.decode("utf-8", "replace") if response.body else "")
            return Ended(
                f"upgrade refused: HTTP {response.status_code} {text}".rstrip(),
                status=response.status_code,
                reason=text,
                retry_after=retry_after(response.headers.get("Retry-After")),
            )
        except (OSError, TimeoutError, WebSocketException) as exc:
            return Ended(f"cannot connect: {type(exc).__name__}: {exc}")
        code, reason = _ABNORMAL_CLOSURE, ""
        self._ws = ws
        try:
            while True:
                message = decode(await ws.recv())
                if message is None:
                    continue
                message = await self._handle(ws, message)
                if message is not None:
                    await self._deliver(message)
        except ConnectionClosed as exc:
            if exc.rcvd is not None:
                code, reason = exc.rcvd.code, exc.rcvd.reason
        finally:
            self._ws = None
            self._requests.lost()
            await self._cancel_helpers()
            await ws.close()  # bounded by close_timeout; 1000 when we are the one closing
            self.finished.set()
            self._on_closed()
        what = f"connection closed {code} ({reason or _CLOSE_NAMES.get(code, 'no reason')})"
        return Ended(what, code=code, reason=reason, connected=self.connected)

    async def request_history(self, since: float | None) -> dict[str, Any]:
        """Ask for the ``history`` and wait for it; ``ConnectionLost`` if the connection
        ends first, ``HistoryUnavailable`` if the server keeps none."""
        from websockets.exceptions import ConnectionClosed

        if self._ws is None:
            raise ConnectionLost()
        request: dict[str, Any] = {"type": "history"}
        if since is not None:
            request["since"] = since
        reply = self._requests.add()
        try:
            await self._ws.send(encode(request))
        except ConnectionClosed:
            if not reply.cancel():
                reply.exception()  # already failed by the close: retrieved, no warning
            raise ConnectionLost() from None
        return await reply

    # --- messages -------------------------------------------------------------------

    async def _handle(self, ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any] | None:
        """Act on one server message; what to yield, or ``None`` to swallow it."""
        if self._requests.settle(message):
            return None
        kind = message.get("type")
        if kind == "ping":
            await ws.send(encode({"type": "pong"}))
            return None
        if kind == "token_expiring" and self._token.source is not None:
            self._spawn(self._refresh(ws))
            return None
        if kind == "connected":
            await self._connected(ws, message)
        elif kind == "audit_action":
            data = message.get("data")
            action_id = data.get("id") if isinstance(data, Mapping) else None
            if action_id is not None:
                if not self._ids.seen.add(str(action_id)):
                    logger.debug("dropped a repeated audit action %s", action_id)
                    return None
                self._ids.note(action_id)
        elif kind == "stats_update":
            if self._stats is not None:
                self._stats.full(message)
            for action in recent_actions(message):
                self._ids.note(action.get("id"))
        elif kind == "stats_delta":
            return await self._delta(ws, message)
        return message

    async def _delta(self, ws: ClientConnection, message: dict[str, Any]) -> dict[str, Any] | None:
        """A delta as the ``stats_update`` it makes; ``None`` (and one request for the
        latest snapshot in full) when it does not apply to what is held."""
        if self._stats is None:
            return None  # never asked for: not ours to guess at
        merged = self._stats.apply(message)
        if merged is None:
            if not self._stats.resyncing:
                self._stats.resyncing = True
                logger.info("a stats delta did not apply; asking for the full snapshot")
                await ws.send(encode({"type": "subscribe", "subscriptions": ["stats"]}))
            return None
        for action in recent_actions(merged):
            self._ids.note(action.get("id"))
        return merged

    async def _connected(self, ws: ClientConnection, message: dict[str, Any]) -> None:
        wanted = self._target.subscriptions
        # `since` is taken now, before this connection's first snapshot moves it on:
        # the snapshot may list actions recorded while we were away.
        since = self._ids.last if "notifications" in wanted else None
        self.connected = True
        if self._target.deltas and message.get("deltas") is True:
            self._stats = HeldStats()
        connection_id = message.get("connectionId")
        self._on_connected(connection_id if isinstance(connection_id, str) else None)
        offered = message.get("subscriptions")
        current = set(offered) if isinstance(offered, list) else set(SUBSCRIPTIONS)
        unwanted = [name for name in SUBSCRIPTIONS if name in current - set(wanted)]
        if unwanted:
            await ws.send(encode({"type": "unsubscribe", "subscriptions": unwanted}))
        # Only what is missing, plus `notifications` for the replay: naming `stats` again
        # would repeat the snapshot the server has just sent.
        names = [
            name
            for name in wanted
            if name not in current or (since is not None and name == "notifications")
        ]
        if names:
            subscribe: dict[str, Any] = {"type": "subscribe", "subscriptions": names}
            if since is not None:
                subscribe["since"] = since
            await ws.send(encode(subscribe))

    async def _refresh(self, ws: ClientConnection) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            token = await self._token.fetch()
        except Exception as exc:
            # The server closes 4401 at expiry; then one more token is asked for.
            logger.warning("token refresh failed: %s", type(exc).__name__)
            return
        self._token.value = token
        with contextlib.suppress(ConnectionClosed):
            await ws.send(encode({"type": "auth", "token": token}))

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
