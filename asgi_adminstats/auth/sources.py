"""Where a token comes from at the handshake (PROTOCOL.md section 1).

Order: ``Authorization: Bearer`` header, then the ``bearer.<token>`` subprotocol.
Without either, the session waits for a first ``auth`` message.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.types import Scope

from ..protocol import PROTOCOL

__all__ = ["TokenOffer", "offered_token"]

_BEARER_PROTOCOL = "bearer."


@dataclass(frozen=True)
class TokenOffer:
    """What the handshake carried: a token (if any) and the subprotocol to select."""

    token: str | None
    subprotocol: str | None
    source: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"TokenOffer(source={self.source!r}, subprotocol={self.subprotocol!r})"


def offered_token(scope: Scope) -> TokenOffer:
    subprotocols: list[str] = list(scope.get("subprotocols") or ())
    # Select ours only when offered: a browser fails the handshake on any other answer.
    selected = PROTOCOL if PROTOCOL in subprotocols else None
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            scheme, _, credentials = value.decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return TokenOffer(credentials.strip(), selected, "header")
    for offered in subprotocols:
        if offered.startswith(_BEARER_PROTOCOL) and len(offered) > len(_BEARER_PROTOCOL):
            return TokenOffer(offered[len(_BEARER_PROTOCOL) :], selected, "subprotocol")
    return TokenOffer(None, selected)
