"""Where a token comes from at the handshake (PROTOCOL.md section 1).

Order: ``Authorization: Bearer`` header, the ``bearer.<token>`` subprotocol, a cookie
(only when ``token_cookie`` names one), the ``access_token`` query parameter (only with
``allow_query_token``: it leaks into access logs). Without any, the session waits for a
first ``auth`` message.
"""

from __future__ import annotations

from dataclasses import dataclass
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

from starlette.types import Scope

from ..protocol import PROTOCOL

__all__ = ["TokenOffer", "bearer_token", "offered_token"]

_BEARER_PROTOCOL = "bearer."


@dataclass(frozen=True)
class TokenOffer:
    """What the handshake carried: a token (if any) and the subprotocol to select."""

    token: str | None
    subprotocol: str | None
    source: str | None = None

    def __repr__(self) -> str:  # never show the token
        return f"TokenOffer(source={self.source!r}, subprotocol={self.subprotocol!r})"


def bearer_token(scope: Scope) -> str | None:
    """The token of the first ``Authorization: Bearer <token>`` header, if any."""
    for name, value in scope.get("headers") or ():
        if name == b"authorization":
            header: str = value.decode("latin-1")
            scheme, _, credentials = header.partition(" ")
            if scheme.lower() == "bearer" and credentials.strip():
                return credentials.strip()
    return None


def offered_token(scope: Scope, *, cookie: str | None = None, query: bool = False) -> TokenOffer:
    subprotocols: list[str] = list(scope.get("subprotocols") or ())
    # Select ours only when offered: a browser fails the handshake on any other answer.
    selected = PROTOCOL if PROTOCOL in subprotocols else None
    header = bearer_token(scope)
    if header is not None:
        return TokenOffer(header, selected, "header")
    for offered in subprotocols:
        if offered.startswith(_BEARER_PROTOCOL) and len(offered) > len(_BEARER_PROTOCOL):
            return TokenOffer(offered[len(_BEARER_PROTOCOL) :], selected, "subprotocol")
    if cookie is not None:
        for name, value in scope.get("headers") or ():
            if name == b"cookie":
                token = SimpleCookie(value.decode("latin-1")).get(cookie)
                if token is not None and token.value:
                    return TokenOffer(token.value, selected, "cookie")
    if query:
        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("access_token")
        if values and values[0]:
            return TokenOffer(values[0], selected, "query")
    return TokenOffer(None, selected)
