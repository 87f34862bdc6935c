"""The snapshot history: a bounded ring of the snapshots' figures, its reply (cached per
snapshot), and its memory at an hour of the sample app's snapshots."""

from __future__ import annotations

import json
import logging
import tracemalloc
from typing import Any

import pytest

from asgi_adminstats import protocol
from asgi_adminstats.delivery import MAX_SERIES, History, Hub, Outbox
from asgi_adminstats.settings import Settings

Message = dict[str, Any]
T0 = 1_735_992_000_000  # 2025-01-04T12:00:00.000Z in epoch ms


def stamp(ms: int) -> str:
    seconds, millis = divmod(ms - T0, 1000)
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"2025-01-04T{12 + hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


def sample(users: int = 45, latency: float | None = 4.2, used: int | None = 85) -> Message:
    """The shape of the sample app's snapshot (stats/engine.py), every kind of leaf."""
    return {
        "online": {"users": users, "players": 32, "connections": 3},
        "totals": {"players": 1250, "villages": 2156},
        "activity": {
            "recentActions": [
                {"id": str(i), "action": "BAN_PLAYER", "admin": "AdminUser",
                 "targetType": "PLAYER", "timestamp": "2025-01-04T11:59:30Z"}
                for i in range(5)
            ]
        },
        "system": {
            "database": {"status": "healthy", "latency": latency},
            "memory": None if used is None else {"used": used, "total": 15_842},
            "uptime": 3600,
        },
        "meta": {
            "instance": "web-1", "collectedAt": "2025-01-04T12:00:00Z", "durationMs": 12.5,
            "stale": False, "sources": {"database": {"ok": True, "ms": 9.1}}, "local": False,
            "bus": {"backend": "memory", "status": "up", "since": None, "reconnects": 0,
                    "error": None},
        },
    }  # fmt: skip


def frame(data: Message, ms: int) -> str:
    """A published ``stats_update`` whose ``timestamp`` is ``ms``."""
    return protocol.encode({"type": "stats_update", "data": data, "timestamp": stamp(ms)})


def reply(history: History, since: float | None = None) -> Message:
    message: Message = json.loads(history.reply(since))
    return message


SAMPLE_SERIES = {
    "online.users",
    "online.players",
    "online.connections",
    "totals.players",
    "totals.villages",
    "system.database.latency",
    "system.memory.used",
    "system.memory.total",
    "system.uptime",
}


def test_the_ring_keeps_the_last_points_and_no_more() -> None:
    history = History(5, interval=5)
    for i in range(12):
        history.add(frame(sample(users=i), T0 + i * 5000))
        assert len(history) == min(i + 1, 5)
    size = history.nbytes
    assert size == 5 * 8 * (1 + len(SAMPLE_SERIES))  # the columns: points x series
    for i in range(12, 40):
        history.add(frame(sample(users=i), T0 + i * 5000))
    assert len(history) == 5 and history.nbytes == size
    message = reply(history)
    assert message["times"] == [T0 + i * 5000 for i in range(35, 40)]  # oldest first
    assert message["series"]["online.users"] == [35, 36, 37, 38, 39]
    assert message["interval"] == 5


def test_numeric_leaves_by_dotted_path_without_meta() -> None:
    history = History(3, interval=5)
    history.add(frame(sample(), T0))
    message = reply(history)
    assert list(message) == ["type", "interval", "times", "series", "timestamp"]
    assert set(message["series"]) == SAMPLE_SERIES  # no strings, booleans, lists or meta
    assert message["times"] == [T0]
    assert message["series"]["system.database.latency"] == [4.2]
    assert message["series"]["online.users"] == [45]  # an int stays an int on the wire
    assert '"online.users":[45]' in history.reply()


def test_a_missing_value_is_null_and_a_late_series_starts_with_nulls() -> None:
    history = History(4, interval=5)
    history.add(frame(sample(latency=None, used=None), T0))  # a failing source
    history.add(frame(sample(latency=7.5), T0 + 5000))
    late = sample()
    late["totals"]["alliances"] = 12  # a new figure from now on
    history.add(frame(late, T0 + 10_000))
    series = reply(history)["series"]
    assert series["system.database.latency"] == [None, 7.5, 4.2]
    assert series["system.memory.used"] == [None, 85, 85]
    assert series["totals.alliances"] == [None, None, 12]
    assert all(len(values) == 3 for values in series.values())


def test_since_sends_only_the_later_points() -> None:
    history = History(10, interval=5)
    for i in range(6):
        history.add(frame(sample(users=i), T0 + i * 5000))
    later = reply(history, since=T0 + 15_000)
    assert later["times"] == [T0 + 20_000, T0 + 25_000]
    assert later["series"]["online.users"] == [4, 5]
    assert history.reply(since=T0 - 1) is history.reply()  # everything: the cached text
    empty = reply(history, since=T0 + 25_000)
    assert empty["times"] == [] and all(v == [] for v in empty["series"].values())


def test_an_empty_history_is_a_valid_reply() -> None:
    message = reply(History(3, interval=2.5))
    assert message["times"] == [] and message["series"] == {} and message["interval"] == 2.5


def test_the_full_reply_is_encoded_once_per_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    encoded: list[int] = []
    original = protocol.history

    def counting(**fields: Any) -> str:
        encoded.append(len(fields["times"]))
        return original(**fields)

    monkeypatch.setattr(protocol, "history", counting)
    history = History(10, interval=5)
    history.add(frame(sample(), T0))
    texts = {id(history.reply()) for _ in range(100)}  # a hundred clients asking
    assert encoded == [1] and len(texts) == 1
    history.add(frame(sample(users=46), T0 + 5000))  # the next tick: encoded anew
    assert reply(history)["series"]["online.users"] == [45, 46]
    assert history.reply() is history.reply()
    assert encoded == [1, 2]


def test_at_most_max_series_and_one_log_line(caplog: pytest.LogCaptureFixture) -> None:
    history = History(3, interval=5)
    wide = {"figures": {f"f{i:02d}": i for i in range(MAX_SERIES + 8)}}
    with caplog.at_level(logging.WARNING, logger="asgi_adminstats.delivery"):
        history.add(frame(wide, T0))
        wider = {"figures": {f"f{i:02d}": i for i in range(MAX_SERIES + 20)}}
        history.add(frame(wider, T0 + 5000))
    series = reply(history)["series"]
    assert len(series) == MAX_SERIES and history.nbytes == 3 * 8 * (1 + MAX_SERIES)
    assert series["figures.f00"] == [0, 0]
    lines = [r.getMessage() for r in caplog.records if "history" in r.getMessage()]
    assert len(lines) == 1 and "8 path(s) ignored" in lines[0], lines


@pytest.mark.parametrize("text", ["s1", "[]", '{"data": 1}', '{"type": "stats_update"}', "{"])
def test_other_frames_are_skipped(text: str) -> None:
    history = History(3, interval=5)
    history.add(text)
    assert len(history) == 0


def test_odd_numbers_are_left_out() -> None:
    history = History(3, interval=5)
    data = {"a": {"big": 2**60, "ok": 2**52, "flag": True, "neg": -1.5, "deep": {"x": 1}}}
    history.add(frame(data, T0))
    series = reply(history)["series"]
    assert series == {"a.ok": [2**52], "a.neg": [-1.5], "a.deep.x": [1]}


def test_the_hub_feeds_it_once_per_snapshot_and_answers_for_it() -> None:
    hub = Hub(history=History(3, interval=5))
    for i in range(5):
        hub.publish_stats(frame(sample(users=i), T0 + i * 5000))
    assert json.loads(hub.history_reply())["series"]["online.users"] == [2, 3, 4]
    assert json.loads(hub.history_reply(T0 + 15_000))["times"] == [T0 + 20_000]
    off = json.loads(Hub().history_reply())
    assert off["type"] == "error" and off["code"] == "history_disabled"


def test_one_text_for_every_client_that_asks() -> None:
    hub = Hub(history=History(3, interval=5))
    hub.publish_stats(frame(sample(), T0))
    outboxes = [Outbox(notification_limit=10) for _ in range(3)]
    for outbox in outboxes:
        outbox.put_control(hub.history_reply())
    popped = [outbox.pop() for outbox in outboxes]
    texts = [item[1] for item in popped if item is not None]
    assert len(texts) == 3 and all(text is texts[0] for text in texts)


def test_an_hour_of_sample_snapshots_is_measured() -> None:
    """Memory "bounded and measured": a full ring of the default hour (720 snapshots of
    the sample app's shape), traced; the figure is in PROTOCOL.md."""
    points = Settings(jwt_secret="s" * 32).history_points
    frames = [frame(sample(users=i % 50, latency=3.0 + i % 7), T0 + i * 5000) for i in range(800)]
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        history = History(points, interval=5)
        for text in frames:
            history.add(text)
        held = tracemalloc.take_snapshot().compare_to(before, "filename")
    finally:
        tracemalloc.stop()
    traced = sum(stat.size_diff for stat in held)
    assert len(history) == points == 720
    assert history.nbytes == 720 * 8 * (1 + len(SAMPLE_SERIES))  # 57,600 bytes
    reply_bytes = len(history.reply().encode())
    print(f"\nhistory: {points} points x {len(history.series)} series: traced "
          f"{traced / 1024:.1f} KiB, columns {history.nbytes / 1024:.1f} KiB, "
          f"reply {reply_bytes / 1024:.1f} KiB")  # fmt: skip
    assert traced < 80 * 1024, traced  # measured: 63 KiB (56 KiB of columns)
    assert reply_bytes < 64 * 1024, reply_bytes
