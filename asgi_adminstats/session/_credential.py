"""A served session's token after the handshake: its expiry, its refresh, and the
re-check of an introspected one.

A JWT says everything at the handshake; an opaque token can be revoked at the
authorization server at any time. Its session keeps the token (in memory only: never
logged, never sent) and, when the cached introspection answer ends (the identity's
``recheck_at``, at most ``introspection_cache_ttl`` after the last answer), verifies it
again the way the handshake did. Any refusal closes the session with the close the
handshake would give that token now: 4401 "invalid token" once inactive (revoked), and,
failing closed, 4401 "authorization server unavailable" when the server cannot be asked.
Between checks that is one loop timer; during one, one short task.
"""

from __future__ import annotations

import asyncio
import time

from ..auth import Identity, TokenVerifier
from ..delivery import Close, Outbox
from ..protocol import CloseCode
from ..telemetry import get_logger
from ._deadlines import Expiry
from ._handshake import verify

__all__ = ["EXPIRY_MARGIN", "Credential"]

connections = get_logger("asgi_adminstats.connections")

#: No re-check this close to the token's ``exp``: the expiry closes the session within
#: the second anyway, and a provider asked right at ``exp`` would say "inactive" where
#: the client is owed "token expired".
EXPIRY_MARGIN = 1.0
_ANOTHER_SUBJECT = "unauthorized: token for another subject"


class Credential:
    """``keep(token, identity)`` once the session is served, ``refresh(token)`` for an
    ``auth`` message, ``stop()`` at its end. A close it asks for goes to the outbox."""

    __slots__ = (
        "_expiry",
        "_ip",
        "_name",
        "_outbox",
        "_sub",
        "_task",
        "_timer",
        "_token",
        "_verifier",
    )

    def __init__(
        self,
        verifier: TokenVerifier,
        expiry: Expiry,
        outbox: Outbox,
        *,
        client_ip: str,
        name: str,
    ) -> None:
        self._verifier = verifier
        self._expiry = expiry
        self._outbox = outbox
        self._ip = client_ip
        self._name = name  # the connection id, for the log
        self._sub: str | None = None
        self._token: str | None = None  # an introspected token's, for its re-check
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:  # never show the token
        return f"Credential(connection={self._name!r}, recheck={self._timer is not None})"

    def keep(self, token: str, identity: Identity) -> None:
        """Time ``identity``'s expiry, and re-check ``token`` when its answer stops
        being cached. No re-check (and the token is dropped) for a JWT, or when the
        token expires first (or within ``EXPIRY_MARGIN``): the expiry closes it then."""
        self._cancel()  # a newer token supersedes a check still running for the old one
        self._sub = identity.sub
        self._expiry.set(identity.exp)
        at, exp = identity.recheck_at, identity.exp
        if at is None or (exp is not None and at >= exp - EXPIRY_MARGIN):
            return
        self._token = token
        delay = max(0.0, at - time.time())
        self._timer = asyncio.get_running_loop().call_later(delay, self._start)

    async def refresh(self, token: str) -> Close | None:
        """A new token for the same subject extends the session; anything else closes."""
        outcome = await verify(self._verifier, token, self._name)
        if isinstance(outcome, tuple):
            return outcome[0]
        return self._renew(token, outcome)

    def stop(self) -> None:
        self._expiry.stop()
        self._cancel()

    def _renew(self, token: str, identity: Identity) -> Close | None:
        if identity.sub != self._sub:
            refused = "token refresh refused: sub=%s client=%s offered another subject"
            connections.info(refused, self._sub, self._ip)
            return Close.of(CloseCode.UNAUTHORIZED, _ANOTHER_SUBJECT)
        self.keep(token, identity)
        return None

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._token = None

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.get_running_loop().create_task(self._recheck())

    async def _recheck(self) -> None:
        token = self._token
        assert token is not None  # kept for as long as a timer or a check is pending
        outcome = await verify(self._verifier, token, self._name)  # failures come back
        self._task = None
        if isinstance(outcome, tuple):
            close, category = outcome
            rechecked = "connection re-checked: reason=%s connection=%s code=%s"
            connections.info(rechecked, category, self._name, close.code)
        else:
            refused = self._renew(token, outcome)  # keep() arms the next re-check
            if refused is None:
                return
            close = refused
        self._token = None
        self._outbox.close(close)
