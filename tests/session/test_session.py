"""The protocol over a real server and client: every message type and its close codes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from asgi_adminstats import CloseCode

from support.loopback import client, closed, recv, recv_type, token


def _is_utc(stamp: str) -> bool:
    return stamp.endswith("Z") and "T" in stamp


async def test_connected_then_stats_at_once(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token("alice")) as ws:
        hello = await recv(ws)
        first = await recv(ws, timeout=1)
    assert hello["type"] == "connected"
    assert hello["message"] == "Connected to admin WebSocket server"
    assert hello["protocol"] == "adminstats.v1"
    assert hello["user"] == {"sub": "alice"}
    assert hello["subscriptions"] == ["stats", "notifications"]
    assert hello["statsInterval"] == 5 and hello["heartbeatInterval"] == 30
    assert len(hello["connectionId"]) >= 8 and _is_utc(hello["timestamp"])
    assert first["type"] == "stats_update" and _is_utc(first["timestamp"])


async def test_stats_every_interval(start: Any) -> None:
    _, addr = await start(stats_interval=0.3)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        stamps = [
            (await recv_type(ws, "stats_update"))["data"]["meta"]["collectedAt"] for _ in range(4)
        ]
    assert len(set(stamps)) == 4
    assert stamps == sorted(stamps)


async def test_connection_count_includes_this_connection(start: Any) -> None:
    _, addr = await start(stats_interval=0.3)
    async with (
        client(f"ws://{addr}/admin/ws", tok=token()) as a,
        client(f"ws://{addr}/admin/ws", tok=token("bob")) as b,
    ):
        await recv(a)
        await recv(b)
        await recv_type(a, "stats_update")
        data = (await recv_type(a, "stats_update"))["data"]
    assert data["online"]["connections"] == 2


async def test_subscribe_and_unsubscribe(start: Any) -> None:
    _, addr = await start(stats_interval=0.3)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "unsubscribe", "subscriptions": ["stats"]}))
        reply = await recv_type(ws, "subscribed")
        assert reply["subscriptions"] == ["notifications"]
        # No snapshot for two intervals once unsubscribed (replies only).
        with pytest.raises(TimeoutError):
            await recv_type(ws, "stats_update", timeout=0.8)
        await ws.send(json.dumps({"type": "subscribe", "subscriptions": ["stats"]}))
        assert (await recv(ws))["subscriptions"] == ["stats", "notifications"]
        assert (await recv(ws, timeout=0.2))["type"] == "stats_update"  # at once, not next tick


async def test_ping_is_answered_with_pong(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send('{"type": "ping"}')
        pong = await recv_type(ws, "pong")
    assert _is_utc(pong["timestamp"])


async def test_heartbeat_kept_alive_by_pongs(start: Any) -> None:
    _, addr = await start(heartbeat_interval=0.3, heartbeat_timeout=0.2)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        for _ in range(3):
            ping = await recv_type(ws, "ping", timeout=2)
            assert _is_utc(ping["timestamp"])
            await ws.send('{"type": "pong"}')
        await ws.send('{"type": "ping"}')
        assert (await recv_type(ws, "pong"))["type"] == "pong"


async def test_missing_pong_closes_4408(start: Any) -> None:
    _, addr = await start(heartbeat_interval=0.3, heartbeat_timeout=0.2)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv_type(ws, "ping", timeout=2)
        code, reason = await closed(ws)
    assert (code, reason) == (CloseCode.TIMEOUT, "timeout: no pong")


@pytest.mark.parametrize(
    ("frame", "code", "message"),
    [
        ("not json", "bad_message", "invalid JSON"),
        ("[1, 2]", "bad_message", "a message must be a JSON object"),
        ('{"type": 3}', "bad_message", "field 'type' must be a string"),
        (
            '{"type": "subscribe", "subscriptions": "stats"}',
            "bad_message",
            "field 'subscriptions' must be a list of strings",
        ),
        ('{"type": "dance"}', "unknown_type", 'unknown message type "dance"'),
    ],
)
async def test_bad_messages_get_error_and_connection_stays(
    start: Any, frame: str, code: str, message: str
) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(frame)
        error = await recv_type(ws, "error")
        await ws.send('{"type": "ping"}')
        assert (await recv_type(ws, "pong"))["type"] == "pong"
    assert (error["code"], error["message"]) == (code, message)


async def test_invalid_subscription_applies_the_valid_names(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(
            json.dumps({"type": "unsubscribe", "subscriptions": ["stats", "notifications"]})
        )
        assert (await recv_type(ws, "subscribed"))["subscriptions"] == []
        await ws.send(
            json.dumps({"type": "subscribe", "subscriptions": ["bogus", "notifications"]})
        )
        error = await recv_type(ws, "error")
        reply = await recv_type(ws, "subscribed")
    assert error["code"] == "invalid_subscription"
    assert error["message"].startswith('unknown subscription "bogus"')
    assert reply["subscriptions"] == ["notifications"]


async def test_error_never_echoes_the_message_in_full(start: Any) -> None:
    _, addr = await start()
    secret_looking = "x" * 500 + "<script>"
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": secret_looking}))
        error = await recv_type(ws, "error")
    assert len(error["message"]) < 80
    assert "<script>" not in error["message"]


async def test_binary_frames_get_error(start: Any) -> None:
    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(b'{"type": "ping"}')
        error = await recv_type(ws, "error")
    assert (error["code"], error["message"]) == ("bad_message", "binary frames are not supported")


async def test_oversized_frame_closes_1009(start: Any) -> None:
    _, addr = await start(max_message_bytes=1024)
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        await ws.send(json.dumps({"type": "ping", "pad": "y" * 2000}))
        assert await closed(ws) == (CloseCode.MESSAGE_TOO_BIG, "message too big")


async def test_shutdown_closes_1001(start: Any) -> None:
    stats, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        shutdown = asyncio.create_task(stats.shutdown())
        code, reason = await closed(ws)
        await shutdown
    assert (code, reason) == (CloseCode.GOING_AWAY, "going away")


async def test_unexpected_failure_closes_1011_without_details(
    start: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from asgi_adminstats.session import Session

    def broken(self: Session, message: object) -> None:
        raise ZeroDivisionError("secret internals")

    _, addr = await start()
    async with client(f"ws://{addr}/admin/ws", tok=token()) as ws:
        await recv(ws)
        monkeypatch.setattr(Session, "_handle", broken)
        await ws.send('{"type": "ping"}')
        code, reason = await closed(ws)
    assert (code, reason) == (CloseCode.INTERNAL_ERROR, "internal error")
    assert "ZeroDivisionError: secret internals" in caplog.text  # in the server log only
