"""Client-message parsing and the close-code table, without a server."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

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


# --- hostile input (issue 15, items 5 and 8) ------------------------------------------

_LIMIT = 4096  # Settings().max_message_bytes: the parser never sees a longer frame


def _deep(opener: str, closer: str, depth: int) -> str:
    return opener * depth + closer * depth


@pytest.mark.parametrize(
    "text",
    [
        _deep("[", "]", 2000),  # the report: RecursionError before the fix
        _deep('{"a":', "}", 800)[:-800] + "1" + "}" * 800,
        '{"type": "subscribe", "subscriptions": ' + _deep("[", "]", 1500) + "}",
        "[" * _LIMIT,  # never closed
        '{"type": "ping", "x": ' + _deep("[", "]", 9) + "}",
    ],
    ids=["lists", "objects", "inside a message", "unclosed", "just over the bound"],
)
def test_deep_nesting_is_a_bad_message(text: str) -> None:
    with pytest.raises(ProtocolError) as err:
        parse_client_message(text)
    assert err.value.code == "bad_message"


def test_nesting_up_to_the_bound_and_brackets_in_strings_are_fine() -> None:
    assert parse_client_message('{"type": "ping", "x": ' + _deep("[", "]", 7) + "}") == Ping()
    quoted = '{"type": "ping", "x": "' + "[{" * 1000 + '\\"[["}'
    assert parse_client_message(quoted) == Ping()


@pytest.mark.parametrize("since", ["²", "٣", "１", "-1", "+1", " 1", "1 ", "", "1" * 19, "0x1"])
def test_since_must_be_ascii_digits(since: str) -> None:
    text = json.dumps({"type": "subscribe", "subscriptions": [], "since": since})
    with pytest.raises(ProtocolError) as err:
        parse_client_message(text)
    assert err.value.code == "bad_message"


@pytest.mark.parametrize("since", [-1, 10**18, 10**400 // 10**300, 1.0, 1e999, [], {}])
def test_since_number_must_be_a_non_negative_id(since: object) -> None:
    text = json.dumps({"type": "subscribe", "subscriptions": [], "since": since})
    with pytest.raises(ProtocolError) as err:
        parse_client_message(text)
    assert err.value.code == "bad_message"


@pytest.mark.parametrize(
    ("since", "expected"), [("0", "0"), ("0123", "0123"), ("9" * 18, "9" * 18), (42, "42")]
)
def test_since_accepts_audit_ids(since: object, expected: str) -> None:
    text = json.dumps({"type": "subscribe", "subscriptions": ["stats"], "since": since})
    assert parse_client_message(text) == Subscribe(("stats",), expected)


_ANY_CHAR = st.characters(exclude_categories=())  # surrogates and controls included
_FRAGMENTS = st.sampled_from(
    [
        "{", "}", "[", "]", ",", ":", '"', "\\", '"type"', '"ping"', '"auth"', '"token"',
        '"subscribe"', '"subscriptions"', '"since"', '"stats"', "1e999", "-1e999", "NaN",
        "Infinity", "-0", "9" * 5000, "1" * 4301, "true", "null", "\\ud800", '"\\ud800"',
        "\x00", "\u2028", "²", "٣", " ", "\n",
    ]
)  # fmt: skip
_MESSAGE_FIELDS = st.dictionaries(
    st.sampled_from(["type", "token", "subscriptions", "since", "x"]),
    st.sampled_from(["ping", "auth", "subscribe", "unsubscribe", "stats", "²", "\ud800", ""])
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.lists(st.text(_ANY_CHAR, max_size=5), max_size=3),
    max_size=4,
)
_HOSTILE_TEXT = st.one_of(
    st.text(_ANY_CHAR, max_size=_LIMIT),
    st.lists(_FRAGMENTS, max_size=400).map("".join),
    _MESSAGE_FIELDS.map(lambda fields: json.dumps(fields, ensure_ascii=False)),
    st.builds(
        lambda opener, depth, inner: (opener * depth + inner)[:_LIMIT],
        st.sampled_from(["[", '{"a":', '{"type":"subscribe","subscriptions":[']),
        st.integers(0, _LIMIT),
        st.text(_ANY_CHAR, max_size=20),
    ),
)


@hsettings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(_HOSTILE_TEXT)
def test_parser_raises_nothing_but_protocol_error(text: str) -> None:
    """Whatever a frame under ``max_message_bytes`` holds, the parser returns a message
    or raises ProtocolError, and the error it answers with can be sent (UTF-8)."""
    try:
        parse_client_message(text)
    except ProtocolError as exc:
        protocol.encode(protocol.error(exc.code, exc.message)).encode()
