"""One admin connection: authentication (``Handshake``), then the reader, heartbeat,
expiry and re-check, while a ``delivery.Writer`` writes what the outbox is given.

The session only speaks the protocol; what it sends comes from the hub (stats,
notifications) and what it needs to know comes in as arguments; its socket is a
``Transport``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from .. import protocol
from ..admission import PendingBudget, TokenBucket
from ..auth import TokenVerifier
from ..delivery import Close, Hub, Writer
from ..protocol import REPLAY_LIMIT, TOKEN_EXPIRED, CloseCode, ProtocolError
from ..settings import Settings
from ..telemetry import Tally, get_logger
from ._credential import Credential
from ._deadlines import Expiry, Heartbeat
from ._handshake import Admitted, Handshake, too_big
from ._transport import GONE, Transport, close_within

__all__ = ["Session"]

logger = get_logger("asgi_adminstats.session")
#: One line per accept, rejection and close: subject, client address, never the token.
connections = get_logger("asgi_adminstats.connections")

Replay = Callable[[int, int], Awaitable[list[dict[str, Any]]]]


class Session:
    # Slots: thousands of idle sessions; a __dict__ each would be ~1 KiB more apiece.
    __slots__ = (
        "__weakref__",
        "_credential",
        "_expiry",
        "_heartbeat",
        "_hub",
        "_ip",
        "_rate",
        "_replay",
        "_settings",
        "_tally",
        "_transport",
        "_verifier",
        "_writer",
        "id",
        "outbox",
        "sub",
        "subscriptions",
    )

    def __init__(
        self,
        transport: Transport,
        *,
        settings: Settings,
        verifier: TokenVerifier,
        hub: Hub,
        client_ip: str,
        tally: Tally,
        replay: Replay,
    ) -> None:
        self._transport = transport
        self._tally = tally
        self._settings = settings
        self._verifier = verifier
        self._hub = hub
        self._ip = client_ip
        self._replay = replay
        self.id = uuid.uuid4().hex[:16]
        # Of a verified token only the subject is kept here, not the claims.
        self.sub: str | None = None
        self.subscriptions: set[str] = set(settings.default_subscriptions)
        self._writer = Writer(
            transport, settings.notification_queue, tally=tally, name=self.id, gone=GONE
        )
        self.outbox = self._writer.outbox
        self._heartbeat = Heartbeat(
            settings.heartbeat_interval,
            settings.heartbeat_timeout,
            ping=lambda: self.outbox.put_control(protocol.ping()),
            on_timeout=lambda: self.outbox.close(Close.of(CloseCode.TIMEOUT, "timeout: no pong")),
        )
        self._expiry = Expiry(
            settings.token_refresh_margin,
            warn=self._warn_expiring,
            expire=lambda: self.outbox.close(Close.of(CloseCode.UNAUTHORIZED, TOKEN_EXPIRED)),
        )
        self._rate = TokenBucket(settings.message_rate, settings.message_burst)
        # After the handshake: expiry, refresh, and an introspected token's re-check.
        self._credential = Credential(
            verifier, self._expiry, self.outbox, client_ip=client_ip, name=self.id
        )

    async def run(self, pending: PendingBudget | None = None) -> None:
        """Serve the socket to its end; ``pending`` bounds those waiting for an ``auth``
        message (None: no bound)."""
        self._hub.sockets += 1  # authenticated or not: every open socket counts
        try:
            # A temporary: nothing of the handshake stays with a session being served.
            admitted = await Handshake(
                self._transport,
                settings=self._settings,
                verifier=self._verifier,
                hub=self._hub,
                client_ip=self._ip,
                tally=self._tally,
                connection_id=self.id,
                close=self._close,
            ).authenticate(pending)
            if admitted is not None:
                self.sub = admitted.identity.sub
                await self._serve_authenticated(admitted)
        except GONE:
            logger.debug("connection %s: the client left mid-handshake", self.id)
        finally:
            self._hub.sockets -= 1

    async def _serve_authenticated(self, admitted: Admitted) -> None:
        started = time.monotonic()
        # Negotiated in the handshake, so the first snapshot already carries its seq.
        self.outbox.deltas = protocol.wants_deltas(self._transport.scope.get("subprotocols"))
        connected = self._connected_message()
        await self._transport.send_first(connected)
        self._tally.attempts["accepted", "-"] += 1
        self._tally.sent["control"] += 1
        self._tally.sent_bytes["control"] += len(connected.encode())
        self._hub.add(self)
        accepted = "connection accepted: sub=%s client=%s connection=%s token_via=%s"
        connections.info(accepted, self.sub, self._ip, self.id, admitted.source)
        try:
            close = await self._serve(admitted)
        finally:
            self._hub.discard(self)
        if close is not None:
            await self._close(close)
        closed = "connection closed: sub=%s client=%s connection=%s code=%s duration=%.1fs"
        code = close.code if close else "client"
        connections.info(closed, self.sub, self._ip, self.id, code, time.monotonic() - started)

    def _connected_message(self) -> str:
        assert self.sub is not None  # set before a session is served
        return protocol.connected(
            connection_id=self.id,
            sub=self.sub,
            subscriptions=self._subscription_list(),
            stats_interval=self._settings.stats_interval,
            heartbeat_interval=self._settings.heartbeat_interval,
            deltas=self.outbox.deltas,
        )

    def _subscription_list(self) -> list[str]:
        return [name for name in protocol.SUBSCRIPTIONS if name in self.subscriptions]

    async def _serve(self, admitted: Admitted) -> Close | None:
        """Read until the client leaves or a close is asked for (by the heartbeat, the
        token's expiry, an overflowing outbox, a failed write, or shutdown). Writing
        needs no task of its own while nothing waits (see ``Writer._write_now``)."""
        self._writer.start()
        reader = asyncio.create_task(self._read())
        closing = self.outbox.closing()
        self._heartbeat.start()
        self._credential.keep(admitted.token, admitted.identity)
        try:
            watched: list[asyncio.Future[Any]] = [reader, closing]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._heartbeat.stop()
            self._credential.stop()
            reader.cancel()
            writing = self._writer.stop()  # from here on, frames only queue
            tasks: list[asyncio.Task[Any]] = [reader] if writing is None else [reader, writing]
            await asyncio.gather(*tasks, return_exceptions=True)
        if closing in done:
            return closing.result()
        exc = reader.exception()
        if exc is None:
            return reader.result()
        if isinstance(exc, GONE):
            return None
        logger.error("session %s failed", self.id, exc_info=exc)
        return Close.of(CloseCode.INTERNAL_ERROR)

    async def _close(self, close: Close) -> None:
        self._tally.closes[close.code] += 1
        if not await close_within(self._transport, close, self._settings.heartbeat_timeout):
            logger.info("connection %s: close frame not taken by the client", self.id)

    def _warn_expiring(self, exp: float) -> None:
        expires_at = datetime.fromtimestamp(exp, UTC)
        self.outbox.put_control(protocol.token_expiring(expires_at=expires_at))

    async def _read(self) -> Close | None:
        limit = self._settings.max_message_bytes
        while True:
            message = await self._transport.receive()
            if message["type"] == "websocket.disconnect":
                return None
            if not self._rate.take():
                return Close.of(CloseCode.RATE_LIMITED)
            text = message.get("text")
            if text is None:
                self._reply_error("bad_message", "binary frames are not supported")
                continue
            if too_big(text, limit):
                return Close.of(CloseCode.MESSAGE_TOO_BIG)
            try:
                parsed = protocol.parse_client_message(text)
            except ProtocolError as exc:
                self._reply_error(exc.code, exc.message)
                if exc.partial is None:
                    continue
                parsed = exc.partial
            close = await self._handle(parsed)
            if close is not None:
                return close

    def _reply_error(self, code: str, message: str) -> None:
        self.outbox.put_control(protocol.error(code=code, message=message))

    async def _handle(self, message: protocol.ClientMessage) -> Close | None:
        match message:
            case protocol.Ping():
                self.outbox.put_control(protocol.pong())
            case protocol.Pong():
                self._heartbeat.pong()
            case protocol.Subscribe(subscriptions=names, since=since):
                self.subscriptions.update(names)
                self._confirm_subscriptions()
                if "stats" in names:
                    self._hub.send_latest(self)  # in full: also how a client resyncs
                if since is not None and "notifications" in self.subscriptions:
                    await self._replay_since(since)
            case protocol.Unsubscribe(subscriptions=names):
                self.subscriptions.difference_update(names)
                if "stats" in names:
                    self.outbox.drop_stats()
                self._confirm_subscriptions()
            case protocol.Auth(token=token):
                return await self._credential.refresh(token)
        return None

    async def _replay_since(self, since: str) -> None:
        """The audit actions after ``since`` (the last id the client saw), oldest first,
        bounded; the client de-duplicates by id against live pushes. The parser let
        only ASCII digits through (protocol._since)."""
        try:
            actions = await self._replay(
                int(since), min(REPLAY_LIMIT, self._settings.notification_queue)
            )
        except Exception as exc:
            logger.warning("replay for %s failed: %s", self.id, type(exc).__name__)
            self._reply_error("unavailable", "replay is unavailable right now")
            return
        for action in actions:
            self.outbox.put_notification(protocol.audit_action(data=action, replayed=True))

    def _confirm_subscriptions(self) -> None:
        reply = protocol.subscribed(subscriptions=self._subscription_list())
        self.outbox.put_control(reply)
