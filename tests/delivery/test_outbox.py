"""The per-connection outbox: latest snapshot wins, notifications bounded, order kept."""

from __future__ import annotations

import asyncio

from asgi_adminstats.delivery import Close, Outbox
from asgi_adminstats.protocol import CloseCode


def test_latest_snapshot_replaces_an_unsent_one() -> None:
    box = Outbox(notification_limit=10)
    box.put_stats("s1")
    box.put_stats("s2")
    box.put_notification("n1")
    box.put_control("c1")
    assert [box.pop() for _ in range(4)] == [
        ("control", "c1"),
        ("audit_action", "n1"),
        ("stats", "s2"),
        None,
    ]


async def test_notification_overflow_asks_to_close_slow_consumer() -> None:
    box = Outbox(notification_limit=2)
    for i in range(3):
        box.put_notification(f"n{i}")
    assert await asyncio.wait_for(box.closing(), 1) == Close(4008, "slow consumer")
    assert box.pop() is None and not box.has_frames(), "nothing is written after a close"
    assert Close.of(CloseCode.SLOW_CONSUMER) == Close(4008, "slow consumer")


async def test_first_close_request_wins() -> None:
    box = Outbox(notification_limit=2)
    box.close(Close.of(CloseCode.GOING_AWAY))
    box.close(Close.of(CloseCode.TIMEOUT))
    assert await box.closing() == Close(1001, "going away")


def test_dropped_stats_are_not_sent() -> None:
    box = Outbox(notification_limit=2)
    box.put_stats("s1")
    box.drop_stats()
    box.put_control("c")
    assert box.pop() == ("control", "c")
    assert box.pop() is None


async def test_a_close_request_is_heard_by_whoever_waits() -> None:
    box = Outbox(notification_limit=1)
    waiter = box.closing()
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put_notification("n1")
    box.put_notification("n2")  # overflow
    assert await asyncio.wait_for(waiter, 1) == Close(4008, "slow consumer")


def test_express_takes_frames_only_when_nothing_is_queued() -> None:
    taken: list[tuple[str, str]] = []
    woken: list[bool] = []
    accept = [True]

    def express(lane: str, text: str) -> bool:
        if accept[0]:
            taken.append((lane, text))
        return accept[0]

    box = Outbox(notification_limit=5, express=express, wake=lambda: woken.append(True))
    box.put_stats("s1")
    assert taken == [("stats", "s1")] and not woken
    accept[0] = False  # a write is on: frames queue and the session is woken
    box.put_notification("n1")
    accept[0] = True
    box.put_control("c1")  # something is queued: no overtaking
    assert taken == [("stats", "s1")] and len(woken) == 2
    assert [box.pop(), box.pop(), box.pop()] == [
        ("control", "c1"),
        ("audit_action", "n1"),
        None,
    ]
