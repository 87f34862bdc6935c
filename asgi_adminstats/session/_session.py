"""One admin connection: authentication (``Handshake``), then the reader, heartbeat,
expiry and re-check, while a ``delivery.Writer`` writes what the outbox is given.

The session reads in the task the server runs it in (``Interruptible``): a close asked
for meanwhile (heartbeat, expiry, an overflowing outbox, a failed write, shutdown)
stops that read.

The session only speaks the protocol; what it sends comes from the hub (stats,
notifications) and what it needs to know comes in as arguments; its socket is a
``Transport``.
"""

from __future__ import annotations

import asyncio
import functools
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
from ._handshake import Handshake, too_big
from ._interrupt import Interrupted, Interruptible
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
        "_reading",
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
        # Shared and replaced, never changed in place: most sessions keep the default.
        self.subscriptions: frozenset[str] = _initial(settings.default_subscriptions)
        self._writer = Writer(
            transport, settings.notification_queue, tally=tally, name=self.id, gone=GONE
        )
        self.outbox = self._writer.outbox
        self._reading = Interruptible()
        self.outbox.on_close = self._reading.interrupt
        # Bound methods, not lambdas: a closure each costs a session ~0.2 KiB more.
        self._heartbeat = Heartbeat(
            settings.heartbeat_interval,
            settings.heartbeat_timeout,
            ping=self._ping,
            on_timeout=self._timed_out,
        )
        self._expiry = Expiry(
            settings.token_refresh_margin, warn=self._warn_expiring, expire=self._expired
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
            if admitted is None:
                return
            self.sub = admitted.identity.sub
            source = admitted.source
            # From here the token (an introspected one, for its re-check) and its claims
            # are the credential's only: not this frame's, which lasts as long as we do.
            self._credential.keep(admitted.token, admitted.identity)
            del admitted
            try:
                await self._serve_authenticated(source)
            finally:
                self._credential.stop()
        except GONE:
            logger.debug("connection %s: the client left mid-handshake", self.id)
        finally:
            self._hub.sockets -= 1

    async def _serve_authenticated(self, source: str) -> None:
        started = time.monotonic()
        # Negotiated in the handshake, so the first snapshot already carries its seq.
        self.outbox.deltas = protocol.wants_deltas(self._transport.scope.get("subprotocols"))
        await self._send_connected()
        self._hub.add(self)
        accepted = "connection accepted: sub=%s client=%s connection=%s token_via=%s"
        connections.info(accepted, self.sub, self._ip, self.id, source)
        # Read until the client leaves or a close is asked for (timers, overflow, a
        # failed write, shutdown); in this frame: one frame less per open connection.
        self._writer.start()
        self._heartbeat.start()
        try:
            close = await self._read_until_closed()
        finally:
            self._heartbeat.stop()
            writing = self._writer.stop()  # from here on, frames only queue
            if writing is not None:
                await asyncio.gather(writing, return_exceptions=True)
            self._hub.discard(self)
        if close is not None:
            await self._close(close)
        closed = "connection closed: sub=%s client=%s connection=%s code=%s duration=%.1fs"
        code = close.code if close else "client"
        connections.info(closed, self.sub, self._ip, self.id, code, time.monotonic() - started)

    async def _send_connected(self) -> None:
        # Its own frame: the text is not held for the session's lifetime.
        connected = self._connected_message()
        await self._transport.send_first(connected)
        self._tally.attempts["accepted", "-"] += 1
        self._tally.sent["control"] += 1
        self._tally.sent_bytes["control"] += len(connected.encode())

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

    async def _read_until_closed(self) -> Close | None:
        try:
            result = await self._reading.run(self._read())
        except Interrupted:
            return self.outbox.requested_close
        except GONE:
            return self.outbox.requested_close
        except Exception as exc:
            logger.error("session %s failed", self.id, exc_info=exc)
            return Close.of(CloseCode.INTERNAL_ERROR)
        requested = self.outbox.requested_close
        return requested if requested is not None else result

    async def _close(self, close: Close) -> None:
        self._tally.closes[close.code] += 1
        if not await close_within(self._transport, close, self._settings.heartbeat_timeout):
            logger.info("connection %s: close frame not taken by the client", self.id)

    def _ping(self) -> None:
        self.outbox.put_control(protocol.ping())

    def _timed_out(self) -> None:
        self.outbox.close(Close.of(CloseCode.TIMEOUT, "timeout: no pong"))

    def _expired(self) -> None:
        self.outbox.close(Close.of(CloseCode.UNAUTHORIZED, TOKEN_EXPIRED))

    def _warn_expiring(self, exp: float) -> None:
        expires_at = datetime.fromtimestamp(exp, UTC)
        self.outbox.put_control(protocol.token_expiring(expires_at=expires_at))

    async def _read(self) -> Close | None:
        limit = self._settings.max_message_bytes
        while self.outbox.requested_close is None:
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
        return self.outbox.requested_close

    def _reply_error(self, code: str, message: str) -> None:
        self.outbox.put_control(protocol.error(code=code, message=message))

    async def _handle(self, message: protocol.ClientMessage) -> Close | None:
        match message:
            case protocol.Ping():
                self.outbox.put_control(protocol.pong())
            case protocol.Pong():
                self._heartbeat.pong()
            case protocol.Subscribe(subscriptions=names, since=since):
                self.subscriptions = self.subscriptions.union(names)
                self._confirm_subscriptions()
                if "stats" in names:
                    self._hub.send_latest(self)  # in full: also how a client resyncs
                if since is not None and "notifications" in self.subscriptions:
                    await self._replay_since(since)
            case protocol.Unsubscribe(subscriptions=names):
                self.subscriptions = self.subscriptions.difference(names)
                if "stats" in names:
                    self.outbox.drop_stats()
                self._confirm_subscriptions()
            case protocol.Auth(token=token):
                return await self._credential.refresh(token)
            case protocol.HistoryRequest(since=after):  # the full one: encoded once per tick
                self.outbox.put_control(self._hub.history_reply(after))
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
        self.outbox.put_control(protocol.subscribed(subscriptions=self._subscription_list()))


@functools.lru_cache(maxsize=8)
def _initial(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(names)
