"""Client-message parsing and the close-code table, without a server."""

from __future__ import annotations

import pytest

from asgi_adminstats import protocol
from asgi_adminstats.protocol import (
    Auth,
    CloseCode,
    Ping,
    Pong,
    ProtocolError,
    Subscribe,
    Unsubscribe,
    parse_client_message,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"type": "ping"}', Ping()),
        ('{"type": "pong"}', Pong()),
        ('{"type": "auth", "token": "t"}', Auth("t")),
        ('{"type": "subscribe", "subscriptions": ["stats", "stats"]}', Subscribe(("stats",))),
        ('{"type": "subscribe", "subscriptions": [], "since": 12}', Subscribe((), "12")),
        (
            '{"type": "unsubscribe", "subscriptions": ["notifications"]}',
            Unsubscribe(("notifications",)),
        ),
    ],
)
def test_parses_every_client_message(text: str, expected: object) -> None:
    assert parse_client_message(text) == expected


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("", "bad_message"),
        ("{", "bad_message"),
        ("null", "bad_message"),
        ('{"no": "type"}', "bad_message"),
        ('{"type": "auth"}', "bad_message"),
        ('{"type": "auth", "token": 5}', "bad_message"),
        ('{"type": "subscribe", "subscriptions": [1]}', "bad_message"),
        ('{"type": "subscribe", "subscriptions": [], "since": true}', "bad_message"),
        ('{"type": "subscribe", "subscriptions": ["x"]}', "invalid_subscription"),
        ('{"type": "stats_update"}', "unknown_type"),
    ],
)
def test_rejects_with_the_documented_code(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_client_message(text)
    assert err.value.code == code


def test_partly_invalid_subscription_keeps_the_valid_part() -> None:
    with pytest.raises(ProtocolError) as err:
        parse_client_message('{"type": "unsubscribe", "subscriptions": ["stats", "nope"]}')
    assert err.value.partial == Unsubscribe(("stats",))


def test_excerpt_is_short_and_escaped() -> None:
    shown = protocol.excerpt("\u0000<b>" + "a" * 100)
    assert len(shown) < 60 and "\\u0000" in shown and shown.endswith('\\u2026"')


def test_every_close_code_has_its_documented_reason() -> None:
    table = {
        1000: "normal closure",
        1001: "going away",
        1009: "message too big",
        1011: "internal error",
        1013: "try again later",
        4008: "slow consumer",
        4401: "unauthorized: missing, invalid or expired token",
        4403: "forbidden: admin role required",
        4408: "timeout",
        4429: "rate limited",
    }
    assert {int(c): c.reason for c in CloseCode} == table
    assert all(len(c.reason.encode()) <= 123 for c in CloseCode)  # RFC 6455 limit


def test_timestamps_are_utc_with_z() -> None:
    message = protocol.server_message("pong")
    assert message["timestamp"].endswith("Z")
    assert list(message) == ["type", "timestamp"]
