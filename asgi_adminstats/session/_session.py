"""One admin connection: authentication, then reader, writer, heartbeat and expiry tasks.

The session only speaks the protocol; what it sends comes from the hub (stats,
notifications) and what it needs to know comes in as arguments.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from starlette.types import Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from .. import protocol
from ..admission import PendingBudget, TokenBucket
from ..auth import AuthError, Identity, TokenVerifier, offered_token
from ..delivery import Close, Hub, Outbox, start_eagerly
from ..protocol import REPLAY_LIMIT, TOKEN_EXPIRED, CloseCode, ProtocolError
from ..settings import Settings
from ..telemetry import Tally, get_logger
from ._deadlines import Expiry, Heartbeat

__all__ = ["Session"]

logger = get_logger("asgi_adminstats.session")
#: One line per accept, rejection and close: subject, client address, never the token.
connections = get_logger("asgi_adminstats.connections")

_GONE = (WebSocketDisconnect, OSError)
Replay = Callable[[int, int], Awaitable[list[dict[str, Any]]]]
_SERVER_FULL = "try again later: server full"
_SUBJECT_FULL = "try again later: too many connections for this user"
_PENDING_FULL = "try again later: too many pending connections"


class Session:
    # Slots: thousands of idle sessions; a __dict__ each would be ~1 KiB more apiece.
    __slots__ = (
        "__weakref__",
        "_exp",
        "_expiry",
        "_heartbeat",
        "_hub",
        "_ip",
        "_rate",
        "_replay",
        "_send",
        "_serving",
        "_settings",
        "_tally",
        "_verifier",
        "_writing",
        "_ws",
        "id",
        "outbox",
        "sub",
        "subscriptions",
    )

    def __init__(
        self,
        websocket: WebSocket,
        *,
        settings: Settings,
        verifier: TokenVerifier,
        hub: Hub,
        client_ip: str,
        tally: Tally,
        replay: Replay | None = None,
        send: Send | None = None,
    ) -> None:
        self._ws = websocket
        # Frames go to the server's own ``send`` (Starlette's state checks are for the
        # handshake and the close, which still go through ``websocket``).
        self._send = send if send is not None else websocket.send
        self._tally = tally
        self._settings = settings
        self._verifier = verifier
        self._hub = hub
        self._ip = client_ip
        self._replay = replay
        self.id = uuid.uuid4().hex[:16]
        # Of the verified token only the subject and its expiry are kept, not the claims.
        self.sub: str | None = None
        self._exp: float | None = None
        self.subscriptions: set[str] = set(settings.default_subscriptions)
        self.outbox = Outbox(
            settings.notification_queue, express=self._write_now, wake=self._drain_soon
        )
        self._serving = False  # frames may be written (after `connected`, until closing)
        # The write in progress, if any: a direct write that had to wait for room, or
        # the drain of what queued meanwhile. None for an idle session (most of them).
        self._writing: asyncio.Task[None] | None = None
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

    async def run(self, pending: PendingBudget | None = None) -> None:
        """Serve the socket to its end; ``pending`` bounds those waiting for an ``auth``
        message (None: no bound)."""
        self._hub.sockets += 1  # authenticated or not: every open socket counts
        try:
            await self._run(pending)
        except _GONE:
            logger.debug("connection %s: the client left mid-handshake", self.id)
        finally:
            self._hub.sockets -= 1

    async def _run(self, pending: PendingBudget | None) -> None:
        settings = self._settings
        offer = offered_token(
            self._ws.scope, cookie=settings.token_cookie, query=settings.allow_query_token
        )
        await self._ws.accept(subprotocol=offer.subprotocol)
        outcome: Identity | tuple[Close, str] | None
        if offer.token is not None:
            # Verified at once, in the verifier's bounded time: no slot to wait in, so a
            # full pending budget never keeps out an admin whose token came with the
            # handshake (the browser's subprotocol, a header, a cookie).
            outcome = await self._verify(offer.token)
        else:
            slot = pending.take(self._ip) if pending is not None else contextlib.nullcontext()
            if slot is None:
                await self._refuse_pending()
                return
            with slot:
                outcome = await self._authenticate_first_message()
        if outcome is None:
            connections.info("connection abandoned: client=%s left before authenticating", self._ip)
            self._tally.attempts["abandoned", "-"] += 1
            return
        if isinstance(outcome, tuple):
            await self._reject(*outcome)
            return
        # Authenticated sessions only: pending sockets have their own budget.
        if len(self._hub) >= settings.max_connections:
            self._identify(outcome)
            await self._reject(Close.of(CloseCode.TRY_AGAIN_LATER, _SERVER_FULL), "capacity")
            return
        if self._hub.count_subject(outcome.sub) >= settings.max_connections_per_subject:
            self._identify(outcome)
            await self._reject(Close.of(CloseCode.TRY_AGAIN_LATER, _SUBJECT_FULL), "capacity")
            return
        self._identify(outcome)
        await self._serve_authenticated(offer.source or "message")

    async def _serve_authenticated(self, source: str) -> None:
        started = time.monotonic()
        connected = self._connected_message()
        await self._ws.send_text(connected)
        self._tally.attempts["accepted", "-"] += 1
        self._tally.sent["control"] += 1
        self._tally.sent_bytes["control"] += len(connected.encode())
        self._hub.add(self)
        connections.info(
            "connection accepted: sub=%s client=%s connection=%s token_via=%s",
            self.sub,
            self._ip,
            self.id,
            source,
        )
        try:
            close = await self._serve()
        finally:
            self._hub.discard(self)
        if close is not None:
            await self._close(close)
        connections.info(
            "connection closed: sub=%s client=%s connection=%s code=%s duration=%.1fs",
            self.sub,
            self._ip,
            self.id,
            close.code if close else "client",
            time.monotonic() - started,
        )

    async def _refuse_pending(self) -> None:
        # Accepted first, like every refusal after the upgrade: a client can tell 1013
        # (back off) from a network fault. No subject: no token was read.
        close = Close.of(CloseCode.TRY_AGAIN_LATER, _PENDING_FULL)
        connections.info(
            "connection rejected: reason=pending client=%s code=%s", self._ip, close.code
        )
        self._tally.attempts["rejected", "pending"] += 1
        await self._close(close)

    async def _reject(self, close: Close, category: str) -> None:
        connections.info(
            "connection rejected: reason=%s sub=%s client=%s code=%s",
            category,
            self.sub or "-",
            self._ip,
            close.code,
        )
        self._tally.attempts["rejected", category] += 1
        await self._close(close)

    async def _verify(self, token: str) -> Identity | tuple[Close, str]:
        try:
            return await self._verifier.verify(token)
        except AuthError as exc:
            return Close(int(exc.code), exc.reason), exc.category
        except Exception as exc:
            return self._failed("verifying a token", exc)

    def _failed(self, doing: str, exc: Exception) -> tuple[Close, str]:
        """An unexpected failure before the session is served: close 1011, one line.

        The exception's class only: its text, or a traceback's locals, may hold the
        client's input or the token.
        """
        logger.error("connection %s: %s failed: %s", self.id, doing, type(exc).__name__)
        return Close.of(CloseCode.INTERNAL_ERROR), "internal"

    def _identify(self, identity: Identity) -> None:
        self.sub, self._exp = identity.sub, identity.exp

    def _connected_message(self) -> str:
        assert self.sub is not None  # set by _identify before a session is served
        return protocol.connected(
            connection_id=self.id,
            sub=self.sub,
            subscriptions=self._subscription_list(),
            stats_interval=self._settings.stats_interval,
            heartbeat_interval=self._settings.heartbeat_interval,
        )

    def _subscription_list(self) -> list[str]:
        return [name for name in protocol.SUBSCRIPTIONS if name in self.subscriptions]

    async def _authenticate_first_message(self) -> Identity | tuple[Close, str] | None:
        """Wait ``auth_timeout`` for ``{"type": "auth"}``; ``None`` if the client left."""
        try:
            async with asyncio.timeout(self._settings.auth_timeout):
                message = await self._ws.receive()
                if message["type"] == "websocket.disconnect":
                    return None
                text = message.get("text")
                if text is not None and _too_big(text, self._settings.max_message_bytes):
                    return Close.of(CloseCode.MESSAGE_TOO_BIG), "too_big"
                try:
                    parsed = protocol.parse_client_message(text) if text is not None else None
                except ProtocolError:
                    parsed = None
                if not isinstance(parsed, protocol.Auth):
                    reason = "unauthorized: expected an auth message"
                    return Close.of(CloseCode.UNAUTHORIZED, reason), "no_token"
                return await self._verify(parsed.token)
        except TimeoutError:
            return Close.of(CloseCode.TIMEOUT, "timeout: no auth message"), "auth_timeout"
        except _GONE:
            raise  # the client left: run() logs it
        except Exception as exc:
            return self._failed("authenticating", exc)

    async def _serve(self) -> Close | None:
        """Read until the client leaves or a close is asked for (by the heartbeat, the
        token's expiry, an overflowing outbox, a failed write, or shutdown). Writing
        needs no task of its own while nothing waits (see ``_write_now``)."""
        self._serving = True
        if self.outbox.has_frames():
            self._drain_soon()
        reader = asyncio.create_task(self._read())
        closing = self.outbox.closing()
        self._heartbeat.start()
        self._expiry.set(self._exp)
        try:
            watched: list[asyncio.Future[Any]] = [reader, closing]
            done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._serving = False
            self._heartbeat.stop()
            self._expiry.stop()
            tasks: list[asyncio.Task[Any]] = [reader]
            if self._writing is not None:
                tasks.append(self._writing)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if closing in done:
            return closing.result()
        exc = reader.exception()
        if exc is None:
            return reader.result()
        if isinstance(exc, _GONE):
            return None
        logger.error("session %s failed", self.id, exc_info=exc)
        return Close.of(CloseCode.INTERNAL_ERROR)

    async def _close(self, close: Close) -> None:
        self._tally.closes[close.code] += 1
        # Bounded: uvicorn's send waits for the socket to drain, and a client that stopped
        # reading never lets it; give up and let the server drop the transport.
        # Not wait_for: a server whose close() swallows cancellation (uvicorn's legacy
        # websockets) would hold us past the bound; a cancelled close is left to end.
        closing = asyncio.create_task(self._ws.close(close.code, close.reason))
        closing.add_done_callback(_consume)
        done, _ = await asyncio.wait([closing], timeout=self._settings.heartbeat_timeout)
        if not done:
            closing.cancel()
            logger.info("connection %s: close frame not taken by the client", self.id)

    def _write_now(self, lane: str, text: str) -> bool:
        """The outbox's express lane: write now if nothing is being written (True: taken).

        The send runs in the caller (the hub's fan-out, the reader, a timer) until it
        would wait; only then does it get a task, and frames queue behind it in order.
        """
        if not self._serving or self._writing is not None:
            return False
        try:
            task = start_eagerly(self._send({"type": "websocket.send", "text": text}))
        except _GONE:
            return True  # the client left: the reader sees it and ends the session
        except Exception as exc:  # never let one session break a fan-out to the others
            self._write_failed(exc)
            return True
        self._count(lane, text)
        if task is not None:
            self._track(task)
        return True

    def _drain_soon(self) -> None:
        """The outbox's wake-up: something queued; drain it unless a write is on."""
        if self._serving and self._writing is None:
            self._track(asyncio.get_running_loop().create_task(self._drain()))

    async def _drain(self) -> None:
        while (item := self.outbox.pop()) is not None:
            lane, text = item
            await self._send({"type": "websocket.send", "text": text})
            self._count(lane, text)

    def _track(self, task: asyncio.Task[None]) -> None:
        self._writing = task
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Task[None]) -> None:
        self._writing = None
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            if not isinstance(exc, _GONE):  # a client that left is the reader's to see
                self._write_failed(exc)
        elif self.outbox.has_frames():
            self._drain_soon()  # queued while the write waited

    def _write_failed(self, exc: BaseException) -> None:
        logger.error("session %s: a write failed", self.id, exc_info=exc)
        self.outbox.close(Close.of(CloseCode.INTERNAL_ERROR))

    def _count(self, lane: str, text: str) -> None:
        self._tally.sent[lane] += 1
        # isascii() is O(1) in CPython: no encoding per frame for ASCII JSON.
        self._tally.sent_bytes[lane] += len(text) if text.isascii() else len(text.encode())

    def _warn_expiring(self, exp: float) -> None:
        expires_at = datetime.fromtimestamp(exp, UTC)
        self.outbox.put_control(protocol.token_expiring(expires_at=expires_at))

    async def _read(self) -> Close | None:
        limit = self._settings.max_message_bytes
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            if not self._rate.take():
                return Close.of(CloseCode.RATE_LIMITED)
            text = message.get("text")
            if text is None:
                self._reply_error("bad_message", "binary frames are not supported")
                continue
            if _too_big(text, limit):
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
                if "stats" in names and self._hub.latest_stats is not None:
                    self.outbox.put_stats(self._hub.latest_stats)
                if since is not None and "notifications" in self.subscriptions:
                    await self._replay_since(since)
            case protocol.Unsubscribe(subscriptions=names):
                self.subscriptions.difference_update(names)
                if "stats" in names:
                    self.outbox.drop_stats()
                self._confirm_subscriptions()
            case protocol.Auth(token=token):
                return await self._reauthenticate(token)
        return None

    async def _replay_since(self, since: str) -> None:
        """The audit actions after ``since`` (the last id the client saw), oldest first,
        bounded; the client de-duplicates by id against live pushes. The parser let
        only ASCII digits through (protocol._since)."""
        if self._replay is None:
            return
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

    async def _reauthenticate(self, token: str) -> Close | None:
        """A new token for the same subject extends the session; anything else closes."""
        outcome = await self._verify(token)
        if isinstance(outcome, tuple):
            return outcome[0]
        if outcome.sub != self.sub:
            connections.info(
                "token refresh refused: sub=%s client=%s offered another subject",
                self.sub,
                self._ip,
            )
            return Close.of(CloseCode.UNAUTHORIZED, "unauthorized: token for another subject")
        self._identify(outcome)
        self._expiry.set(outcome.exp)
        return None


def _consume(task: asyncio.Task[None]) -> None:
    # A close to a client that already left fails (OSError, a disconnect, or Starlette's
    # RuntimeError): nothing is left to tell it, and nothing to report.
    if not task.cancelled():
        task.exception()


def _too_big(text: str, limit: int) -> bool:
    # Characters first (cheap, and never fewer than the UTF-8 bytes), then bytes.
    return len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)
