"""One admin connection: authentication, then reader, writer and heartbeat tasks.

The session only speaks the protocol; what it sends comes from the hub (stats,
notifications) and what it needs to know comes in as arguments.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from . import protocol
from .auth import AuthError, Identity, JWTVerifier, offered_token
from .hub import Hub
from .outbox import Close, Outbox
from .protocol import CloseCode, ProtocolError
from .settings import Settings

__all__ = ["Session"]

logger = logging.getLogger("asgi_adminstats.session")

_GONE = (WebSocketDisconnect, OSError)


class Session:
    def __init__(
        self, websocket: WebSocket, *, settings: Settings, verifier: JWTVerifier, hub: Hub
    ) -> None:
        self._ws = websocket
        self._settings = settings
        self._verifier = verifier
        self._hub = hub
        self.id = uuid.uuid4().hex[:16]
        self.identity: Identity | None = None
        self.subscriptions: set[str] = set(settings.default_subscriptions)
        self.outbox = Outbox(settings.notification_queue)
        self._pong = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._run()
        except _GONE:
            logger.debug("connection %s: the client left mid-handshake", self.id)

    async def _run(self) -> None:
        offer = offered_token(self._ws.scope)
        peer = self._ws.client.host if self._ws.client else "-"
        identity: Identity | Close | None
        try:
            identity = self._verifier.verify(offer.token) if offer.token else None
        except AuthError as exc:
            identity = Close(int(exc.code), exc.reason)
        await self._ws.accept(subprotocol=offer.subprotocol)
        if identity is None:
            identity = await self._authenticate_first_message()
            if identity is None:
                return  # the client left before authenticating
        if isinstance(identity, Close):
            logger.info(
                "admin rejected: client=%s code=%s reason=%r (token via %s)",
                peer,
                identity.code,
                identity.reason,
                offer.source or "message",
            )
            await self._close(identity)
            return
        self.identity = identity
        started = time.monotonic()
        await self._ws.send_text(protocol.encode(self._connected_message()))
        self._hub.add(self)
        logger.info("admin connected: sub=%s client=%s connection=%s", identity.sub, peer, self.id)
        try:
            close = await self._serve()
        finally:
            self._hub.discard(self)
        if close is not None:
            await self._close(close)
        logger.info(
            "admin disconnected: sub=%s connection=%s code=%s duration=%.1fs",
            identity.sub,
            self.id,
            close.code if close else "client",
            time.monotonic() - started,
        )

    def _connected_message(self) -> dict[str, Any]:
        assert self.identity is not None
        return protocol.server_message(
            "connected",
            message="Connected to admin WebSocket server",
            protocol=protocol.PROTOCOL,
            connectionId=self.id,
            user={"sub": self.identity.sub},
            subscriptions=self._subscription_list(),
            statsInterval=self._settings.stats_interval,
            heartbeatInterval=self._settings.heartbeat_interval,
        )

    def _subscription_list(self) -> list[str]:
        return [name for name in protocol.SUBSCRIPTIONS if name in self.subscriptions]

    async def _authenticate_first_message(self) -> Identity | Close | None:
        """Wait ``auth_timeout`` for ``{"type": "auth"}``; ``None`` if the client left."""
        try:
            message = await asyncio.wait_for(self._ws.receive(), self._settings.auth_timeout)
        except TimeoutError:
            return Close.of(CloseCode.TIMEOUT, "timeout: no auth message")
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text")
        try:
            parsed = protocol.parse_client_message(text) if text is not None else None
        except ProtocolError:
            parsed = None
        if not isinstance(parsed, protocol.Auth):
            return Close.of(CloseCode.UNAUTHORIZED, "unauthorized: expected an auth message")
        try:
            return self._verifier.verify(parsed.token)
        except AuthError as exc:
            return Close(int(exc.code), exc.reason)

    async def _serve(self) -> Close | None:
        tasks = [
            asyncio.create_task(coro) for coro in (self._read(), self._write(), self._heartbeat())
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        task = done.pop()
        exc = task.exception()
        if exc is None:
            return task.result()
        if isinstance(exc, _GONE):
            return None
        logger.error("session %s failed", self.id, exc_info=exc)
        return Close.of(CloseCode.INTERNAL_ERROR)

    async def _close(self, close: Close) -> None:
        try:
            await self._ws.close(close.code, close.reason)
        except (*_GONE, RuntimeError):
            pass  # the client is already gone: nothing left to tell it

    async def _write(self) -> Close:
        while True:
            item = await self.outbox.get()
            if isinstance(item, Close):
                return item
            await self._ws.send_text(item)

    async def _heartbeat(self) -> Close:
        while True:
            await asyncio.sleep(self._settings.heartbeat_interval)
            self._pong.clear()
            self.outbox.put_control(protocol.encode(protocol.server_message("ping")))
            try:
                await asyncio.wait_for(self._pong.wait(), self._settings.heartbeat_timeout)
            except TimeoutError:
                return Close.of(CloseCode.TIMEOUT, "timeout: no pong")

    async def _read(self) -> Close | None:
        limit = self._settings.max_message_bytes
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return None
            text = message.get("text")
            if text is None:
                self._reply_error("bad_message", "binary frames are not supported")
                continue
            if len(text) > limit or len(text.encode()) > limit:
                return Close.of(CloseCode.MESSAGE_TOO_BIG)
            try:
                parsed = protocol.parse_client_message(text)
            except ProtocolError as exc:
                self._reply_error(exc.code, exc.message)
                if exc.partial is None:
                    continue
                parsed = exc.partial
            close = self._handle(parsed)
            if close is not None:
                return close

    def _reply_error(self, code: str, message: str) -> None:
        self.outbox.put_control(protocol.encode(protocol.error(code, message)))

    def _handle(self, message: protocol.ClientMessage) -> Close | None:
        match message:
            case protocol.Ping():
                self.outbox.put_control(protocol.encode(protocol.server_message("pong")))
            case protocol.Pong():
                self._pong.set()
            case protocol.Subscribe(subscriptions=names):
                self.subscriptions.update(names)
                self._confirm_subscriptions()
                if "stats" in names and self._hub.latest_stats is not None:
                    self.outbox.put_stats(self._hub.latest_stats)
            case protocol.Unsubscribe(subscriptions=names):
                self.subscriptions.difference_update(names)
                if "stats" in names:
                    self.outbox.drop_stats()
                self._confirm_subscriptions()
            case protocol.Auth(token=token):
                return self._reauthenticate(token)
        return None

    def _confirm_subscriptions(self) -> None:
        reply = protocol.server_message("subscribed", subscriptions=self._subscription_list())
        self.outbox.put_control(protocol.encode(reply))

    def _reauthenticate(self, token: str) -> Close | None:
        """A new token for the same subject replaces the old one; anything else closes."""
        assert self.identity is not None
        try:
            identity = self._verifier.verify(token)
        except AuthError as exc:
            return Close(int(exc.code), exc.reason)
        if identity.sub != self.identity.sub:
            return Close.of(CloseCode.UNAUTHORIZED, "unauthorized: token for another subject")
        self.identity = identity
        return None
