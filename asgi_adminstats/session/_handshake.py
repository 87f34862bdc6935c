"""A socket from its upgrade until it is served or refused: the token that came with the
handshake or the first ``auth`` message, verified in the verifier's bounded time, then
the capacity checks.

A refusal is logged (the connection log: subject, client address, never the token),
counted, and closed through the session; an authenticated client is handed back to
the session to be served.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from .. import protocol
from ..admission import PendingBudget
from ..auth import AuthError, Identity, TokenVerifier, offered_token
from ..delivery import Close, Hub
from ..protocol import CloseCode, ProtocolError
from ..settings import Settings
from ..telemetry import Tally, get_logger
from ._transport import GONE, Transport

__all__ = ["Admitted", "Handshake", "Outcome", "Rejection", "failed", "too_big", "verify"]

logger = get_logger("asgi_adminstats.session")
connections = get_logger("asgi_adminstats.connections")

#: The close to send and the rejection's category (in the log and the metrics).
Rejection = tuple[Close, str]
Outcome = Identity | Rejection

_SERVER_FULL = "try again later: server full"
_SUBJECT_FULL = "try again later: too many connections for this user"
_PENDING_FULL = "try again later: too many pending connections"


@dataclass(frozen=True, slots=True)
class Admitted:
    """An authenticated client: who, how its token came, and the token (for the
    session to re-check an introspected one; never shown)."""

    identity: Identity
    source: str
    token: str = field(repr=False)


class Handshake:
    """Made for one socket and dropped once it is served: nothing of it stays with an
    idle session."""

    __slots__ = (
        "_close",
        "_hub",
        "_id",
        "_ip",
        "_settings",
        "_tally",
        "_token",
        "_transport",
        "_verifier",
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
        connection_id: str,
        close: Callable[[Close], Awaitable[None]],
    ) -> None:
        self._transport = transport
        self._settings = settings
        self._verifier = verifier
        self._hub = hub
        self._ip = client_ip
        self._tally = tally
        self._id = connection_id
        self._close = close  # the session's: counted, and bounded in time
        self._token: str | None = None  # the one verified, once read

    async def authenticate(self, pending: PendingBudget | None) -> Admitted | None:
        """The client's identity, token and how it came, or None: refused, or it left."""
        settings = self._settings
        offer = offered_token(
            self._transport.scope, cookie=settings.token_cookie, query=settings.allow_query_token
        )
        await self._transport.accept(offer.subprotocol)
        outcome: Outcome | None
        if offer.token is not None:
            # Verified at once, in the verifier's bounded time: no slot to wait in, so a
            # full pending budget never keeps out an admin whose token came with the
            # handshake (the browser's subprotocol, a header, a cookie).
            self._token = offer.token
            outcome = await verify(self._verifier, offer.token, self._id)
        else:
            slot = pending.take(self._ip) if pending is not None else contextlib.nullcontext()
            if slot is None:
                await self._refuse_pending()
                return None
            with slot:
                outcome = await self._first_message()
        if outcome is None:
            connections.info("connection abandoned: client=%s left before authenticating", self._ip)
            self._tally.attempts["abandoned", "-"] += 1
            return None
        if isinstance(outcome, tuple):
            await self._reject(*outcome)
            return None
        # Authenticated sessions only: pending sockets have their own budget.
        if len(self._hub) >= settings.max_connections:
            full = Close.of(CloseCode.TRY_AGAIN_LATER, _SERVER_FULL)
            await self._reject(full, "capacity", outcome.sub)
            return None
        if self._hub.count_subject(outcome.sub) >= settings.max_connections_per_subject:
            full = Close.of(CloseCode.TRY_AGAIN_LATER, _SUBJECT_FULL)
            await self._reject(full, "capacity", outcome.sub)
            return None
        assert self._token is not None  # read before it could be verified
        return Admitted(outcome, offer.source or "message", self._token)

    async def _refuse_pending(self) -> None:
        # Accepted first, like every refusal after the upgrade: a client can tell 1013
        # (back off) from a network fault. No subject: no token was read.
        close = Close.of(CloseCode.TRY_AGAIN_LATER, _PENDING_FULL)
        connections.info(
            "connection rejected: reason=pending client=%s code=%s", self._ip, close.code
        )
        self._tally.attempts["rejected", "pending"] += 1
        await self._close(close)

    async def _reject(self, close: Close, category: str, sub: str | None = None) -> None:
        connections.info(
            "connection rejected: reason=%s sub=%s client=%s code=%s",
            category,
            sub or "-",
            self._ip,
            close.code,
        )
        self._tally.attempts["rejected", category] += 1
        await self._close(close)

    async def _first_message(self) -> Outcome | None:
        """Wait ``auth_timeout`` for ``{"type": "auth"}``; ``None`` if the client left."""
        settings = self._settings
        try:
            async with asyncio.timeout(settings.auth_timeout):
                message = await self._transport.receive()
                if message["type"] == "websocket.disconnect":
                    return None
                text = message.get("text")
                if text is not None and too_big(text, settings.max_message_bytes):
                    return Close.of(CloseCode.MESSAGE_TOO_BIG), "too_big"
                try:
                    parsed = protocol.parse_client_message(text) if text is not None else None
                except ProtocolError:
                    parsed = None
                if not isinstance(parsed, protocol.Auth):
                    reason = "unauthorized: expected an auth message"
                    return Close.of(CloseCode.UNAUTHORIZED, reason), "no_token"
                self._token = parsed.token
                return await verify(self._verifier, parsed.token, self._id)
        except TimeoutError:
            return Close.of(CloseCode.TIMEOUT, "timeout: no auth message"), "auth_timeout"
        except GONE:
            raise  # the client left: Session.run() logs it
        except Exception as exc:
            return failed(self._id, "authenticating", exc)


async def verify(verifier: TokenVerifier, token: str, connection_id: str) -> Outcome:
    try:
        return await verifier.verify(token)
    except AuthError as exc:
        return Close(int(exc.code), exc.reason), exc.category
    except Exception as exc:
        return failed(connection_id, "verifying a token", exc)


def failed(connection_id: str, doing: str, exc: Exception) -> Rejection:
    """An unexpected failure before the session is served: close 1011, one line.

    The exception's class only: its text, or a traceback's locals, may hold the
    client's input or the token.
    """
    logger.error("connection %s: %s failed: %s", connection_id, doing, type(exc).__name__)
    return Close.of(CloseCode.INTERNAL_ERROR), "internal"


def too_big(text: str, limit: int) -> bool:
    # Characters first (cheap, and never fewer than the UTF-8 bytes), then bytes.
    return len(text) > limit or (len(text) * 4 > limit and len(text.encode()) > limit)
