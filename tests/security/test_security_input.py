"""Security: malformed input, oversized frames, a client that stops reading.

Each test starts a real uvicorn server on loopback and attacks it with real clients;
see tests/helpers/security.py for what every test asserts.

 1. Malformed input: 1000 Hypothesis-generated invalid messages (sent again and again for
    2.4 s) each get an escaped ``error`` quoting at most 32 characters, no traceback, while
    two other admins keep getting snapshots on time. Open defect: the escaping can blow
    those 32 characters up to a message of ~440 characters.
 2. Oversized frames: over ``max_message_bytes`` 1009, before authentication too, and a
    frame header declaring 1 GiB is refused before its payload (uvicorn's ``ws_max_size``).
    Open defect: before authentication the limit counts characters, not bytes.
 3. A client that stops reading: the heartbeat closes it (4408), others are not slowed.
    Open defect: once its buffers are full, the close itself never completes.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytest
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from asgi_adminstats import CloseCode

from helpers.hostile import (
    RawClient,
    StatsWatcher,
    assert_serves_healthy_client,
    bad_messages,
    capture_logs,
    collect,
)
from helpers.security import CONNECTIONS, LIMIT, check_error, padded, ping_pong, url
from support.loopback import client, closed, recv, recv_type, token
from support.wire import parse_frames

OPCODE_TEXT, OPCODE_CLOSE = 0x1, 0x8


def close_frame(data: bytes) -> tuple[int, str]:
    """The close code and reason of the last frame in ``data`` (a server's bytes)."""
    frames = parse_frames(data)
    assert frames, f"no frame in {data[:200]!r}"
    opcode, payload = frames[-1]
    assert opcode == OPCODE_CLOSE, f"the last frame is not a close: {frames[-3:]!r}"
    return int.from_bytes(payload[:2], "big"), payload[2:].decode()


async def eventually(condition: Callable[[], bool], within: float, step: float = 0.02) -> float:
    """Seconds until ``condition()`` held; fails after ``within`` seconds."""
    started = time.monotonic()
    for _ in range(int(within / step) + 1):
        if condition():
            return time.monotonic() - started
        await asyncio.sleep(step)
    raise AssertionError(f"not within {within} s")


# =====================================================================================
# 1. Malformed input
# =====================================================================================


async def test_malformed_barrage_gets_errors_while_others_get_stats_on_time(start: Any) -> None:
    interval = 0.3
    barrage = [
        text
        for batch in collect(st.lists(bad_messages, min_size=20, max_size=20), 50)
        for text in batch
    ]
    assert len(barrage) == 1000
    _, addr = await start(stats_interval=interval, message_rate=10_000, message_burst=10_000)
    async with (
        client(url(addr), tok=token("mallory")) as attacker,
        client(url(addr), tok=token("alice")) as alice,
        client(url(addr), tok=token("bob")) as bob,
    ):
        for ws in (attacker, alice, bob):
            assert (await recv(ws))["type"] == "connected"
        watchers = [StatsWatcher(alice), StatsWatcher(bob)]
        for watcher in watchers:
            watcher.start()
        # Each message gets its error before the next goes out, as fast as the server
        # answers; the 1000 are sent again until the barrage has lasted 8 intervals.
        started = time.monotonic()
        sent = 0
        for _ in range(30):
            for text in barrage:
                await attacker.send(text)
                try:
                    error = await recv_type(attacker, "error", timeout=3)
                except TimeoutError:
                    pytest.fail(f"no error for {text!r}")
                check_error(error, text)
            sent += len(barrage)
            if time.monotonic() - started > 8 * interval:
                break
        ended = time.monotonic()
        for watcher in watchers:
            await watcher.stop()
        gaps = [watcher.max_gap(started, ended) for watcher in watchers]
        assert (alice.close_code, bob.close_code, attacker.close_code) == (None, None, None)
        for ws in (alice, bob, attacker):
            await ping_pong(ws)
    assert ended - started > 8 * interval, f"{sent} messages in {ended - started:.1f} s"
    assert max(gaps) < 3 * interval, f"gaps {gaps}: {sent} messages in {ended - started:.1f} s"
    await assert_serves_healthy_client(addr)


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"type": "\x00" * 40}),
        json.dumps({"type": "subscribe", "subscriptions": ["\U0001f600" * 40]}),
    ],
    ids=["control characters", "emoji"],
)
async def test_error_messages_stay_under_100_characters(start: Any, text: str) -> None:
    _, addr = await start()
    async with client(url(addr), tok=token()) as ws:
        assert (await recv(ws))["type"] == "connected"
        await ws.send(text)
        error = await recv_type(ws, "error")
    check_error(error, text)  # the excerpt itself is short: 32 characters
    await assert_serves_healthy_client(addr)
    assert len(error["message"]) < 100, len(error["message"])


# =====================================================================================
# 2. Oversized frames
# =====================================================================================


TOO_BIG = (CloseCode.MESSAGE_TOO_BIG, "message too big")


async def test_frame_over_max_message_bytes_closes_1009(start: Any) -> None:
    _, addr = await start(max_message_bytes=LIMIT)
    async with client(url(addr), tok=token()) as ws:
        assert (await recv(ws))["type"] == "connected"
        await ws.send(padded("ping", LIMIT))  # at the limit: fine
        assert (await recv_type(ws, "pong"))["type"] == "pong"
        await ws.send(padded("ping", LIMIT + 1))
        assert await closed(ws) == TOO_BIG
    async with client(url(addr), tok=token()) as ws:  # fewer characters than bytes
        assert (await recv(ws))["type"] == "connected"
        multibyte = padded("ping", 2 * LIMIT, pad="€")
        assert len(multibyte) < LIMIT
        await ws.send(multibyte)
        assert await closed(ws) == TOO_BIG
    await assert_serves_healthy_client(addr)


async def test_oversized_first_message_closes_1009(start: Any) -> None:
    _, addr = await start(max_message_bytes=LIMIT)
    async with client(url(addr)) as ws:
        await ws.send(padded("auth", LIMIT + 1, token=token()))
        assert await closed(ws) == TOO_BIG
    await assert_serves_healthy_client(addr)


async def test_oversized_first_message_in_multibyte_characters_closes_1009(start: Any) -> None:
    _, addr = await start(max_message_bytes=LIMIT)
    frame = padded("auth", 2 * LIMIT, pad="€", token=token())
    assert len(frame) < LIMIT < len(frame.encode())
    async with client(url(addr)) as ws:
        await ws.send(frame)
        try:
            result: object = (await recv(ws, timeout=2))["type"]  # today: "connected"
        except ConnectionClosed:
            result = (ws.close_code, ws.close_reason)
    await assert_serves_healthy_client(addr)
    assert result == TOO_BIG


async def test_frame_declaring_1_gib_is_refused_before_its_payload(start: Any) -> None:
    stats, addr = await start()
    raw, head = await RawClient.handshake(addr, {"Authorization": f"Bearer {token()}"})
    try:
        assert head.startswith(b"HTTP/1.1 101 ")
        started = time.monotonic()
        await raw.send_frame(OPCODE_TEXT, b"", declared_length=1 << 30)
        data = await raw.read_available(limit=3)
        elapsed = time.monotonic() - started
    finally:
        raw.close()
    # uvicorn's ws_max_size (16 MiB) refuses it from the frame header alone.
    code, reason = close_frame(data)
    assert code == CloseCode.MESSAGE_TOO_BIG
    assert "exceeds limit" in reason
    assert elapsed < 1.5
    await eventually(lambda: stats.connections == 0, within=2)
    await assert_serves_healthy_client(addr)


# =====================================================================================
# 3. A client that stops reading
# =====================================================================================


HEARTBEAT, PONG_WAIT, SLACK = 0.5, 0.3, 1.0


async def test_client_that_stops_reading_is_closed_by_the_heartbeat(start: Any) -> None:
    interval = 0.3
    stats, addr = await start(
        stats_interval=interval, heartbeat_interval=HEARTBEAT, heartbeat_timeout=PONG_WAIT
    )
    async with client(url(addr), tok=token("alice")) as healthy:
        assert (await recv(healthy))["type"] == "connected"
        watcher = StatsWatcher(healthy)
        watcher.start()
        with capture_logs() as logs:
            raw, head = await RawClient.handshake(
                addr, {"Authorization": f"Bearer {token('sloth')}"}
            )
            started = time.monotonic()
            try:
                assert head.startswith(b"HTTP/1.1 101 ")
                await eventually(lambda: stats.connections == 2, within=2)

                def gone() -> bool:
                    return any("closed: sub=sloth" in line for line in logs.lines(CONNECTIONS))

                took = await eventually(gone, within=HEARTBEAT + PONG_WAIT + SLACK)
                assert stats.connections == 1  # only the healthy client is left
                data = await raw.read_available(limit=2)  # read at last
            finally:
                raw.close()
        ended = time.monotonic()
        await watcher.stop()
        await ping_pong(healthy)
    assert took >= HEARTBEAT + PONG_WAIT - 0.1
    texts = [json.loads(p) for op, p in parse_frames(data) if op == OPCODE_TEXT]
    assert "ping" in [m["type"] for m in texts]  # it was asked, and did not answer
    assert close_frame(data) == (CloseCode.TIMEOUT, "timeout: no pong")
    closing = logs.lines(CONNECTIONS)[-1]
    assert re.fullmatch(
        r"connection closed: sub=sloth client=127\.0\.0\.1 connection=\w+ code=4408 "
        r"duration=\d+\.\ds",
        closing,
    ), closing
    assert watcher.max_gap(started, ended) < 3 * interval
    await assert_serves_healthy_client(addr)


class Bulky:
    """A custom collector making each snapshot big: a busy stream in a few ticks."""

    name = "bulky"

    def __init__(self, size: int) -> None:
        self.size = size

    async def collect(self) -> Mapping[str, Any]:
        return {"bulk": "x" * self.size}


async def test_client_that_stops_reading_with_full_buffers_is_released(start: Any) -> None:
    bulky = Bulky(512 * 1024)
    stats, addr = await start(
        stats_interval=0.1,
        heartbeat_interval=1.0,
        heartbeat_timeout=0.5,
        max_connections=1,
        collectors=(bulky,),
    )
    raw, head = await RawClient.handshake(
        addr, {"Authorization": f"Bearer {token('sloth')}"}, rcvbuf=4096
    )
    try:
        with capture_logs() as logs:
            assert head.startswith(b"HTTP/1.1 101 ")
            await eventually(lambda: stats.connections == 1, within=2)
            # The heartbeat gives up on it (the hub forgets it) ...
            await eventually(lambda: stats.connections == 0, within=1.5 + SLACK)
            bulky.size = 0
            # ... but the close must also complete, and free the slot.
            await asyncio.sleep(SLACK)
            closing = [line for line in logs.lines(CONNECTIONS) if "connection closed" in line]
            try:
                async with client(url(addr), tok=token("next")) as ws:
                    after = (await recv(ws))["type"]
            except ConnectionClosed as exc:
                after = f"closed {exc.rcvd.code if exc.rcvd else None}"
        assert closing != [], "no 'connection closed' line: the session is stuck in close()"
        assert after == "connected", f"the next admin got: {after}"
    finally:
        raw.close()  # the stuck send() ends with the connection
        await asyncio.sleep(0.2)
        await assert_serves_healthy_client(addr)
