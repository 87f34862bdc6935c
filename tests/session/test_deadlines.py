"""Heartbeat and token expiry as loop timers (real time, short intervals)."""

from __future__ import annotations

import asyncio
import itertools
import time

from asgi_adminstats.session import Expiry, Heartbeat


async def test_pings_keep_coming_while_pongs_answer() -> None:
    pings: list[float] = []
    timeouts: list[bool] = []
    beat: Heartbeat

    def ping() -> None:
        pings.append(time.monotonic())
        asyncio.get_running_loop().call_later(0.01, beat.pong)

    beat = Heartbeat(0.05, 0.03, ping=ping, on_timeout=lambda: timeouts.append(True))
    started = time.monotonic()
    beat.start()
    for _ in range(200):  # bounded: 4 pings take 0.2 s on an idle machine
        if len(pings) >= 4:
            break
        await asyncio.sleep(0.01)
    beat.stop()
    assert len(pings) >= 4 and not timeouts
    assert pings[0] - started >= 0.05
    gaps = [b - a for a, b in itertools.pairwise(pings)]
    assert all(0.045 <= gap <= 0.5 for gap in gaps), gaps


async def test_a_missing_pong_times_out_once() -> None:
    pings: list[float] = []
    timeouts: list[float] = []
    beat = Heartbeat(
        0.05, 0.03, ping=lambda: pings.append(1), on_timeout=lambda: timeouts.append(1)
    )
    beat.start()
    await asyncio.sleep(0.25)
    assert pings == [1] and timeouts == [1], "no further pings after the timeout"


async def test_stop_cancels_everything() -> None:
    pings: list[int] = []
    beat = Heartbeat(0.02, 0.01, ping=lambda: pings.append(1), on_timeout=lambda: None)
    beat.start()
    beat.stop()
    await asyncio.sleep(0.06)
    assert pings == []


async def test_expiry_warns_then_expires() -> None:
    events: list[tuple[str, float]] = []
    expiry = Expiry(
        0.2,
        warn=lambda exp: events.append(("warn", exp)),
        expire=lambda: events.append(("expire", time.time())),
    )
    exp = time.time() + 0.3
    expiry.set(exp)
    await asyncio.sleep(0.2)
    assert events == [("warn", exp)]
    await asyncio.sleep(0.2)
    assert [name for name, _ in events] == ["warn", "expire"]
    assert events[1][1] >= exp


async def test_a_refreshed_exp_replaces_both_timers() -> None:
    events: list[str] = []
    expiry = Expiry(0.2, warn=lambda _: events.append("warn"), expire=lambda: events.append("x"))
    expiry.set(time.time() + 0.25)
    await asyncio.sleep(0.12)
    assert events == ["warn"]
    expiry.set(time.time() + 1.0)  # the client sent a fresh token
    await asyncio.sleep(0.3)
    assert events == ["warn"], "the old expiry must not fire"
    expiry.stop()


async def test_no_exp_means_no_timers_and_a_past_exp_fires_at_once() -> None:
    events: list[str] = []
    expiry = Expiry(30, warn=lambda _: events.append("warn"), expire=lambda: events.append("x"))
    expiry.set(None)
    await asyncio.sleep(0.02)
    assert events == []
    expiry.set(time.time() - 1)
    await asyncio.sleep(0.01)
    assert events == ["warn", "x"]
