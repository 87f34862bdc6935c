"""Client -> server: the messages a client may send, and their parsing (PROTOCOL.md
section 3), which refuses anything unusable with a :class:`ProtocolError`."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import accumulate

from ..errors import AdminStatsError
from ._codes import SUBSCRIPTIONS

__all__ = [
    "MAX_DEPTH",
    "Auth",
    "ClientMessage",
    "HistoryRequest",
    "Ping",
    "Pong",
    "ProtocolError",
    "Subscribe",
    "Unsubscribe",
    "excerpt",
    "parse_client_message",
]

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
#: ``since`` of a ``history`` request: epoch milliseconds, below the year 9999's.
_MAX_EPOCH_MS = 253_402_300_800_000


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


@dataclass(frozen=True)
class HistoryRequest:
    """``{"type": "history"}``; ``since``: only snapshots after it (epoch ms)."""

    since: float | None = None


ClientMessage = Subscribe | Unsubscribe | Ping | Pong | Auth | HistoryRequest


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
    if kind == "history":
        return HistoryRequest(_epoch_ms(data.get("since")))
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


def _epoch_ms(value: object) -> float | None:
    """``since`` of a ``history`` request: a time in epoch milliseconds (a number)."""
    if value is None:
        return None
    # Compared, never converted first: NaN and infinities fail the comparison, and so
    # does an int too large for a float (float() would raise OverflowError).
    if (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and 0 <= value < _MAX_EPOCH_MS
    ):
        return float(value)
    raise ProtocolError("bad_message", "field 'since' must be a time in epoch milliseconds")
