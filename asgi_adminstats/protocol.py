"""The wire protocol (PROTOCOL.md): close codes, server messages, client-message parsing.

Pure functions and data only: no I/O, so the session can stay a thin state machine.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import IntEnum
from itertools import accumulate
from typing import Any

from .errors import AdminStatsError

__all__ = [
    "AUTH_SERVER_UNAVAILABLE",
    "INVALID_TOKEN",
    "PROTOCOL",
    "REPLAY_LIMIT",
    "SUBSCRIPTIONS",
    "TOKEN_EXPIRED",
    "Auth",
    "ClientMessage",
    "CloseCode",
    "Ping",
    "Pong",
    "ProtocolError",
    "Subscribe",
    "Unsubscribe",
    "audit_action",
    "connected",
    "encode",
    "error",
    "parse_client_message",
    "ping",
    "pong",
    "stats_update",
    "subscribed",
    "token_expiring",
    "utc_timestamp",
]

PROTOCOL = "adminstats.v1"
SUBSCRIPTIONS = ("stats", "notifications")
#: The most audit actions replayed at once, oldest first: after a bus outage, and for a
#: ``since`` (then also at most ``notification_queue``, the client's queue bound).
REPLAY_LIMIT = 100
_EXCERPT = 32
#: Deepest nesting a client message may have. Valid ones nest 2 deep (an object holding
#: a list); json's C parser recurses per level and fails with RecursionError far below
#: the 4 KiB frame limit, so deeper input is refused before it is parsed.
MAX_DEPTH = 8
# A string to its closing quote or to the end of the text: never fails once started,
# so the scan is linear however many quotes and backslashes the text holds.
_STRING = re.compile(r'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
#: ``since``: an audit action id, ASCII digits only (``str.isdigit`` takes "²" and "٣").
_AUDIT_ID = re.compile(r"[0-9]{1,18}")
_MAX_AUDIT_ID = 10**18


class CloseCode(IntEnum):
    """Close codes of PROTOCOL.md section 4; ``.reason`` is the documented reason text."""

    NORMAL = 1000
    GOING_AWAY = 1001
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013
    SLOW_CONSUMER = 4008
    UNAUTHORIZED = 4401
    FORBIDDEN = 4403
    TIMEOUT = 4408
    RATE_LIMITED = 4429

    @property
    def reason(self) -> str:
        return _REASONS[self]


_REASONS = {
    CloseCode.NORMAL: "normal closure",
    CloseCode.GOING_AWAY: "going away",
    CloseCode.MESSAGE_TOO_BIG: "message too big",
    CloseCode.INTERNAL_ERROR: "internal error",
    CloseCode.TRY_AGAIN_LATER: "try again later",
    CloseCode.SLOW_CONSUMER: "slow consumer",
    CloseCode.UNAUTHORIZED: "unauthorized: missing, invalid or expired token",
    CloseCode.FORBIDDEN: "forbidden: admin role required",
    CloseCode.TIMEOUT: "timeout",
    CloseCode.RATE_LIMITED: "rate limited",
}


#: 4401 reasons that name the case (section 4); a client retries later only on
#: ``AUTH_SERVER_UNAVAILABLE``, since the token itself may be fine.
INVALID_TOKEN = "unauthorized: invalid token"
TOKEN_EXPIRED = "unauthorized: token expired"
AUTH_SERVER_UNAVAILABLE = "unauthorized: authorization server unavailable"


def utc_timestamp(moment: datetime | None = None) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, millisecond precision."""
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def encode(message: Mapping[str, Any]) -> str:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str)


# --- server -> client: one constructor per message of section 2, each the frame's text.
# Fields in the order they have always been sent, ``timestamp`` last.


def _frame(type_: str, **fields: Any) -> str:
    return encode({"type": type_, **fields, "timestamp": utc_timestamp()})


def connected(
    *,
    connection_id: str,
    sub: str,
    subscriptions: Sequence[str],
    stats_interval: float,
    heartbeat_interval: float,
) -> str:
    return _frame(
        "connected",
        message="Connected to admin WebSocket server",
        protocol=PROTOCOL,
        connectionId=connection_id,
        user={"sub": sub},
        subscriptions=list(subscriptions),
        statsInterval=stats_interval,
        heartbeatInterval=heartbeat_interval,
    )


def stats_update(*, data: Mapping[str, Any]) -> str:
    return _frame("stats_update", data=data)


def subscribed(*, subscriptions: Sequence[str]) -> str:
    return _frame("subscribed", subscriptions=list(subscriptions))


def audit_action(*, data: Mapping[str, Any], replayed: bool = False) -> str:
    """One redacted audit action; ``replayed`` marks one sent again after a gap."""
    return _frame("audit_action", data={**data, "replayed": True} if replayed else data)


def ping() -> str:
    return _frame("ping")


def pong() -> str:
    return _frame("pong")


def token_expiring(*, expires_at: datetime) -> str:
    return _frame("token_expiring", expiresAt=utc_timestamp(expires_at))


def error(*, code: str, message: str) -> str:
    return _frame("error", code=code, message=message)


# --- client -> server ---------------------------------------------------------------


class ProtocolError(AdminStatsError):
    """A client message the server cannot use; ``code`` is the ``error`` code."""

    def __init__(self, code: str, message: str, *, partial: ClientMessage | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        # What still applies: the valid names of a partly invalid (un)subscribe.
        self.partial = partial


@dataclass(frozen=True)
class Subscribe:
    subscriptions: tuple[str, ...]
    since: str | None = None


@dataclass(frozen=True)
class Unsubscribe:
    subscriptions: tuple[str, ...]


@dataclass(frozen=True)
class Ping:
    pass


@dataclass(frozen=True)
class Pong:
    pass


@dataclass(frozen=True)
class Auth:
    token: str


ClientMessage = Subscribe | Unsubscribe | Ping | Pong | Auth


def excerpt(value: object) -> str:
    """A short, escaped excerpt of client input: never echo a message in full.

    Bounded after escaping (a control character takes six), at ``_EXCERPT`` characters.
    """
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    shown: list[str] = []
    used = 0
    for char in text:
        escaped = json.dumps(char, ensure_ascii=True)[1:-1]
        if used + len(escaped) > _EXCERPT:
            break
        shown.append(escaped)
        used += len(escaped)
    cut = "\\u2026" if len(shown) < len(text) else ""
    return '"' + "".join(shown) + cut + '"'


def parse_client_message(text: str) -> ClientMessage:
    """Parse one text frame; raises :class:`ProtocolError` for anything unusable, and
    nothing else, whatever ``text`` holds."""
    if _too_deep(text):
        raise ProtocolError("bad_message", "nested too deeply")
    try:
        data = json.loads(text)
    except Exception:  # invalid JSON, ints over Python's digit limit, RecursionError
        raise ProtocolError("bad_message", "invalid JSON") from None
    if not isinstance(data, dict):
        raise ProtocolError("bad_message", "a message must be a JSON object")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("bad_message", "field 'type' must be a string")
    if kind == "ping":
        return Ping()
    if kind == "pong":
        return Pong()
    if kind == "auth":
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("bad_message", "field 'token' must be a non-empty string")
        return Auth(token)
    if kind in ("subscribe", "unsubscribe"):
        names, invalid = _subscriptions(data.get("subscriptions"))
        message: Subscribe | Unsubscribe
        if kind == "unsubscribe":
            message = Unsubscribe(names)
        else:
            message = Subscribe(names, _since(data.get("since")))
        if invalid:
            raise ProtocolError(
                "invalid_subscription",
                f"unknown subscription {excerpt(invalid[0])}; valid: {', '.join(SUBSCRIPTIONS)}",
                partial=message if names else None,
            )
        return message
    raise ProtocolError("unknown_type", f"unknown message type {excerpt(kind)}")


def _subscriptions(value: object) -> tuple[tuple[str, ...], list[str]]:
    """The valid names (deduplicated) and the invalid ones."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ProtocolError("bad_message", "field 'subscriptions' must be a list of strings")
    valid = tuple(dict.fromkeys(v for v in value if v in SUBSCRIPTIONS))
    return valid, [v for v in value if v not in SUBSCRIPTIONS]


def _too_deep(text: str) -> bool:
    # Counting is cheap (C speed); only text with that many brackets is looked at
    # closely, and then only its brackets outside strings.
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_NESTING.__getitem__, brackets)), default=0) > MAX_DEPTH


def _since(value: object) -> str | None:
    """``since`` as the digits of an audit action id (a string, or a non-negative int)."""
    if value is None:
        return None
    if isinstance(value, str) and _AUDIT_ID.fullmatch(value):
        return value
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < _MAX_AUDIT_ID:
        return str(value)
    raise ProtocolError("bad_message", "field 'since' must be an audit action id")
