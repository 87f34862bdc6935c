"""The wire protocol (PROTOCOL.md): close codes, server messages, client-message parsing.

Pure functions and data only: no I/O, so the session can stay a thin state machine.
The close codes are in ``_codes``, the client messages and their parsing in ``_parse``.
The server messages are here: each encodes through this module's ``encode``, which
tests/test_stats.py replaces to count the encodings of a tick.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ._codes import (
    AUTH_SERVER_UNAVAILABLE,
    INVALID_TOKEN,
    PROTOCOL,
    REPLAY_LIMIT,
    SUBSCRIPTIONS,
    TOKEN_EXPIRED,
    CloseCode,
)
from ._delta import DELTA_PROTOCOL, diff, merge_patch, same, wants_deltas, with_seq
from ._parse import MAX_DEPTH as MAX_DEPTH
from ._parse import (
    Auth,
    ClientMessage,
    HistoryRequest,
    Ping,
    Pong,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    parse_client_message,
)
from ._parse import _since as _since
from ._parse import excerpt as excerpt

__all__ = [
    "AUTH_SERVER_UNAVAILABLE",
    "DELTA_PROTOCOL",
    "INVALID_TOKEN",
    "PROTOCOL",
    "REPLAY_LIMIT",
    "SUBSCRIPTIONS",
    "TOKEN_EXPIRED",
    "Auth",
    "ClientMessage",
    "CloseCode",
    "HistoryRequest",
    "Ping",
    "Pong",
    "ProtocolError",
    "Subscribe",
    "Unsubscribe",
    "audit_action",
    "connected",
    "diff",
    "encode",
    "error",
    "history",
    "merge_patch",
    "parse_client_message",
    "ping",
    "pong",
    "same",
    "stats_delta",
    "stats_update",
    "subscribed",
    "token_expiring",
    "utc_timestamp",
    "wants_deltas",
    "with_seq",
]


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
    deltas: bool = False,
) -> str:
    """``deltas``: the client offered ``adminstats.delta``; only then is the field sent."""
    extra = {"deltas": True} if deltas else {}
    return _frame(
        "connected",
        message="Connected to admin WebSocket server",
        protocol=PROTOCOL,
        connectionId=connection_id,
        user={"sub": sub},
        subscriptions=list(subscriptions),
        statsInterval=stats_interval,
        heartbeatInterval=heartbeat_interval,
        **extra,
    )


def stats_update(*, data: Mapping[str, Any]) -> str:
    return _frame("stats_update", data=data)


def stats_delta(*, seq: int, base: int, patch: Mapping[str, Any], timestamp: str) -> str:
    """The merge patch from snapshot ``base`` to ``seq``; ``timestamp``: the snapshot's frame's."""
    return encode(
        {"type": "stats_delta", "seq": seq, "base": base, "data": patch, "timestamp": timestamp}
    )


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


def history(
    *, interval: float, times: list[int], series: Mapping[str, list[int | float | None]]
) -> str:
    """The snapshots' figures, oldest first, a column each: ``times`` in epoch ms, and
    per series (a dotted path into ``data``) its value at each time (``None``: none)."""
    return _frame("history", interval=interval, times=times, series=series)
