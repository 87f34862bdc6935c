"""The protocol's constants (its name, the subscriptions, the replay bound) and the close
codes with their documented reasons (PROTOCOL.md section 4)."""

from __future__ import annotations

from enum import IntEnum

__all__ = [
    "AUTH_SERVER_UNAVAILABLE",
    "INVALID_TOKEN",
    "PROTOCOL",
    "REPLAY_LIMIT",
    "SUBSCRIPTIONS",
    "TOKEN_EXPIRED",
    "CloseCode",
]

PROTOCOL = "adminstats.v1"
SUBSCRIPTIONS = ("stats", "notifications")
#: The most audit actions replayed at once, oldest first: after a bus outage, and for a
#: ``since`` (then also at most ``notification_queue``, the client's queue bound).
REPLAY_LIMIT = 100


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
