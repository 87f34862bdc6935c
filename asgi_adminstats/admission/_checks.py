"""Whether a WebSocket may become a session: Origin, attempt rate, the pending budget.

Origin and attempt rate refuse before the upgrade (HTTP 403 / 429). The pending budget
bounds the sockets that wait for a first ``auth`` message: in total and per client
address, apart from ``max_connections`` (which counts authenticated sessions only), so
idle unauthenticated sockets never take an admin's place. The session takes its slot
after the upgrade, when it knows whether the token came with the handshake.
"""

from __future__ import annotations

import ipaddress
from types import TracebackType
from typing import Any

from starlette.responses import PlainTextResponse
from starlette.types import Scope
from starlette.websockets import WebSocket

from ..protocol import CloseCode
from ..settings import Settings
from ..telemetry import Tally, get_logger
from ._guard import AttemptLimiter, Networks, OriginGuard, client_ip

__all__ = ["Admission", "PendingBudget", "PendingSlot", "deny"]

#: The connection log (the session's logger: one line per accept, rejection and close).
connections = get_logger("asgi_adminstats.connections")
#: Set-up hints (a first refusal's WARNING), apart from the connection log's one line each.
setup = get_logger("asgi_adminstats")


class PendingSlot:
    """One pending socket's place in the budget; ``release()`` (or leaving ``with``)
    gives it back, once."""

    __slots__ = ("_budget", "_client")

    def __init__(self, budget: PendingBudget, client: str) -> None:
        self._budget: PendingBudget | None = budget
        self._client = client

    def release(self) -> None:
        if self._budget is not None:
            self._budget.give_back(self._client)
            self._budget = None

    def __enter__(self) -> PendingSlot:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


class PendingBudget:
    """At most ``total`` pending sockets, ``per_client`` of them per client address.

    The table holds only addresses with a socket pending, so it never outgrows ``total``.
    """

    def __init__(self, total: int, per_client: int) -> None:
        self._total = total
        self._per_client = per_client
        self._held: dict[str, int] = {}
        self.count = 0

    def take(self, client: str) -> PendingSlot | None:
        """A slot for ``client``, or None when the total or its own share is used up."""
        held = self._held.get(client, 0)
        if self.count >= self._total or held >= self._per_client:
            return None
        self._held[client] = held + 1
        self.count += 1
        return PendingSlot(self, client)

    def give_back(self, client: str) -> None:
        self.count -= 1
        left = self._held[client] - 1
        if left:
            self._held[client] = left
        else:
            del self._held[client]


class Admission:
    """The checks of PROTOCOL.md section 1 that come before a token is read."""

    def __init__(self, settings: Settings, tally: Tally) -> None:
        self._origins = OriginGuard(settings)
        self._attempts = AttemptLimiter(settings)
        self._trusted: Networks = tuple(
            ipaddress.ip_network(p, strict=False) for p in settings.trusted_proxies
        )
        self._header = settings.forwarded_header.lower()
        self._tally = tally
        self.pending = PendingBudget(settings.max_pending, settings.max_pending_per_client)

    def client_ip(self, scope: Scope) -> str:
        return client_ip(scope, self._trusted, self._header)

    def check(self, scope: Scope) -> dict[str, Any]:
        """What the checks before the upgrade would say now to a WebSocket with this
        request's Origin from its address, taking nothing (``<mount>/admission``). It
        tells the caller about itself only: never the allow-list or another address."""
        return {
            "origin": self._origins.origin(scope),
            "allowed": self._origins.allows(scope),
            "limited": self._attempts.limited(self.client_ip(scope)),
        }

    async def admit(self, websocket: WebSocket) -> str | None:
        """Origin, then the attempt rate: the client address if admitted, None once
        refused (answered, logged, counted). The pending budget is the session's."""
        ip = self.client_ip(websocket.scope)
        if not self._origins.allows(websocket.scope):
            connections.info("connection rejected: reason=origin client=%s code=403", ip)
            origin = self._origins.first_refusal(websocket.scope)
            if origin is not None:
                setup.warning(
                    "refused a WebSocket from Origin %s: not in allowed_origins "
                    "(ADMINSTATS_ALLOWED_ORIGINS); logged once per origin",
                    origin,
                )
            self._tally.attempts["rejected", "origin"] += 1
            await deny(websocket, 403, "forbidden origin")
            return None
        wait = self._attempts.attempt(ip)
        if wait is not None:
            connections.info("connection rejected: reason=rate client=%s code=429", ip)
            self._tally.attempts["rejected", "rate"] += 1
            await deny(
                websocket, 429, "too many connection attempts", headers={"Retry-After": str(wait)}
            )
            return None
        return ip


async def deny(
    websocket: WebSocket, status: int, text: str, headers: dict[str, str] | None = None
) -> None:
    """Refuse before accept: an HTTP response where the server can send one."""
    if "websocket.http.response" in websocket.scope.get("extensions", {}):
        response = PlainTextResponse(text, status_code=status, headers=headers)
        await websocket.send_denial_response(response)
    else:
        await websocket.close(CloseCode.NORMAL, text)
