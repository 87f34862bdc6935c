"""Client-message parsing and the close-code table, without a server."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from asgi_adminstats import protocol
from asgi_adminstats.protocol import (
    Auth,
    CloseCode,
    HistoryRequest,
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
        ('{"type": "history"}', HistoryRequest()),
        ('{"type": "history", "since": 1735992000000}', HistoryRequest(1735992000000.0)),
        ('{"type": "history", "since": 0.5}', HistoryRequest(0.5)),
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
        ('{"type": "history", "since": "1735992000000"}', "bad_message"),
        ('{"type": "history", "since": true}', "bad_message"),
        ('{"type": "history", "since": -1}', "bad_message"),
        ('{"type": "history", "since": 1e999}', "bad_message"),
        ('{"type": "history", "since": NaN}', "bad_message"),
        ('{"type": "history", "since": 253402300800000}', "bad_message"),
        ('{"type": "history", "since": ' + "9" * 400 + "}", "bad_message"),
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
    message = json.loads(protocol.pong())
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", message["timestamp"])
    assert list(message) == ["type", "timestamp"]


# --- server messages: one constructor each (issue 10) ---------------------------------

_SECTION_2 = (
    (Path(__file__).parents[1] / "docs" / "PROTOCOL.md")
    .read_text(encoding="utf-8")
    .split("## 2. Server")[1]
    .split("\n## 3.")[0]
)
#: The documented example of each server message, by type.
_EXAMPLES = {
    example["type"]: example
    for example in map(json.loads, re.findall(r"```json\n(.*?)```", _SECTION_2, re.DOTALL))
}
_CONSTRUCTORS: dict[str, Callable[[dict[str, Any]], str]] = {
    "connected": lambda ex: protocol.connected(
        connection_id=ex["connectionId"],
        sub=ex["user"]["sub"],
        subscriptions=ex["subscriptions"],
        stats_interval=ex["statsInterval"],
        heartbeat_interval=ex["heartbeatInterval"],
    ),
    "stats_update": lambda ex: protocol.stats_update(data=ex["data"]),
    "stats_delta": lambda ex: protocol.stats_delta(
        seq=ex["seq"], base=ex["base"], patch=ex["data"], timestamp=ex["timestamp"]
    ),
    "subscribed": lambda ex: protocol.subscribed(subscriptions=ex["subscriptions"]),
    "audit_action": lambda ex: protocol.audit_action(data=ex["data"]),
    "ping": lambda ex: protocol.ping(),
    "pong": lambda ex: protocol.pong(),
    "token_expiring": lambda ex: protocol.token_expiring(
        expires_at=datetime.fromisoformat(ex["expiresAt"])
    ),
    "error": lambda ex: protocol.error(code=ex["code"], message=ex["message"]),
    "history": lambda ex: protocol.history(
        interval=ex["interval"], times=ex["times"], series=ex["series"]
    ),
}


def _fixed_time(text: str) -> str:
    """The frame with its own ``timestamp`` (the last field) replaced by ``T``."""
    head, stamp = text.rsplit(',"timestamp":', 1)
    assert re.fullmatch(r'"[0-9T:.-]{23}Z"\}', stamp), stamp
    return head + ',"timestamp":"T"}'


def test_every_documented_server_message_has_a_constructor() -> None:
    headings = re.findall(r"^### (.+)$", _SECTION_2, re.MULTILINE)
    documented = {name for heading in headings for name in heading.split(" / ")}
    assert documented == set(_CONSTRUCTORS)
    assert documented <= set(protocol.__all__)
    assert "server_message" not in vars(protocol)


@pytest.mark.parametrize("kind", sorted(set(_EXAMPLES)))
def test_constructors_build_the_documented_examples(kind: str) -> None:
    example = _EXAMPLES[kind]
    built = json.loads(_CONSTRUCTORS[kind](example))
    assert built == {**example, "timestamp": built["timestamp"]}


@pytest.mark.parametrize(
    ("kind", "wire"),
    [
        (
            "connected",
            '{"type":"connected","message":"Connected to admin WebSocket server",'
            '"protocol":"adminstats.v1","connectionId":"c7f1\u2026","user":{"sub":"alice"},'
            '"subscriptions":["stats","notifications"],"statsInterval":5,'
            '"heartbeatInterval":30,"timestamp":"T"}',
        ),
        (
            "stats_update",
            '{"type":"stats_update","data":{"online":{"users":45,"players":32,'
            '"connections":3},"totals":{"players":1250,"villages":2156},'
            '"activity":{"recentActions":[{"id":"123","action":"BAN_PLAYER",'
            '"admin":"AdminUser","targetType":"PLAYER","timestamp":"2025-01-04T11:59:30Z"}]},'
            '"system":{"database":{"status":"healthy","latency":45},'
            '"memory":{"used":85,"total":128},"uptime":3600},"meta":{"instance":"web-1",'
            '"collectedAt":"2025-01-04T12:00:00Z","durationMs":12,"stale":false,'
            '"sources":{"database":{"ok":true,"ms":9}},"local":false,"bus":{"backend":"redis",'
            '"status":"up","since":"2025-01-04T11:00:00.000Z","reconnects":0,"error":null}}},'
            '"timestamp":"T"}',
        ),
        (
            "stats_delta",
            '{"type":"stats_delta","seq":42,"base":41,"data":{"online":{"users":46},'
            '"meta":{"collectedAt":"2025-01-04T12:00:05Z","durationMs":11}},"timestamp":"T"}',
        ),
        (
            "subscribed",
            '{"type":"subscribed","subscriptions":["stats","notifications"],"timestamp":"T"}',
        ),
        (
            "audit_action",
            '{"type":"audit_action","data":{"id":"124","action":"UNBAN_PLAYER",'
            '"admin":"AdminUser","targetType":"PLAYER","timestamp":"2025-01-04T12:00:01Z"},'
            '"timestamp":"T"}',
        ),
        ("ping", '{"type":"ping","timestamp":"T"}'),
        ("pong", '{"type":"pong","timestamp":"T"}'),
        (
            "token_expiring",
            '{"type":"token_expiring","expiresAt":"2025-01-04T12:05:00.000Z","timestamp":"T"}',
        ),
        (
            "error",
            '{"type":"error","code":"bad_message","message":"invalid JSON","timestamp":"T"}',
        ),
        (
            "history",
            '{"type":"history","interval":5,"times":[1735991990000,1735991995000,'
            '1735992000000],"series":{"online.users":[44,45,45],"online.players":[32,32,32],'
            '"system.database.latency":[41.5,null,45],"system.memory.used":[85,85,86]},'
            '"timestamp":"T"}',
        ),
    ],
)
def test_constructors_send_the_exact_frames(kind: str, wire: str) -> None:
    """Byte for byte as sent before the constructors: compact JSON, UTF-8 as is, the
    fields in this order and ``timestamp`` last."""
    text = _CONSTRUCTORS[kind](_EXAMPLES.get(kind, {}))
    assert _fixed_time(text) == wire
    assert list(json.loads(text)) == list(json.loads(wire))


def test_a_replayed_audit_action_says_so_last_in_data() -> None:
    data = {"id": "7", "action": "BAN_PLAYER", "admin": "Zo\u00eb"}
    replayed = protocol.audit_action(data=data, replayed=True)
    assert _fixed_time(replayed) == (
        '{"type":"audit_action","data":{"id":"7","action":"BAN_PLAYER","admin":"Zo\u00eb",'
        '"replayed":true},"timestamp":"T"}'
    )
    assert "replayed" not in json.loads(protocol.audit_action(data=data))["data"]
    assert data == {"id": "7", "action": "BAN_PLAYER", "admin": "Zo\u00eb"}  # not mutated


def test_token_expiring_gives_a_naive_or_zoned_time_in_utc() -> None:
    zoned = datetime(2025, 1, 4, 13, 5, tzinfo=timezone(timedelta(hours=1)))
    for moment in (zoned, datetime(2025, 1, 4, 12, 5)):
        message = json.loads(protocol.token_expiring(expires_at=moment))
        assert message["expiresAt"] == "2025-01-04T12:05:00.000Z"


def test_constructor_fields_are_keyword_only() -> None:
    with pytest.raises(TypeError):
        protocol.error("bad_message", "invalid JSON")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        protocol.subscribed(["stats"])  # type: ignore[call-arg]


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
        protocol.error(code=exc.code, message=exc.message).encode()


def test_deltas_show_in_connected_only_when_negotiated() -> None:
    def connected(deltas: bool = False) -> dict[str, Any]:
        text = protocol.connected(
            connection_id="c1",
            sub="alice",
            subscriptions=["stats"],
            stats_interval=5,
            heartbeat_interval=30,
            deltas=deltas,
        )
        message: dict[str, Any] = json.loads(text)
        return message

    assert "deltas" not in connected()
    with_deltas = connected(deltas=True)
    assert list(with_deltas)[-2:] == ["deltas", "timestamp"] and with_deltas["deltas"] is True
    assert protocol.wants_deltas(["adminstats.v1", "adminstats.delta"])
    assert not protocol.wants_deltas(["adminstats.v1", "bearer.adminstats.delta"])
    assert not protocol.wants_deltas(None)


def test_a_full_snapshot_gets_its_seq_without_being_encoded_again() -> None:
    text = protocol.stats_update(data={"a": 1})
    spliced = protocol.with_seq(text, 7)
    assert spliced is not None
    assert list(json.loads(spliced)) == ["type", "seq", "data", "timestamp"]
    assert json.loads(spliced) == {**json.loads(text), "seq": 7}
    assert protocol.with_seq('{"type":"pong"}', 7) is None
