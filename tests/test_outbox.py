"""The per-connection outbox: latest snapshot wins, notifications bounded, order kept."""

from __future__ import annotations

from asgi_adminstats.outbox import Close, Outbox
from asgi_adminstats.protocol import CloseCode


async def test_latest_snapshot_replaces_an_unsent_one() -> None:
    box = Outbox(notification_limit=10)
    box.put_stats("s1")
    box.put_stats("s2")
    box.put_notification("n1")
    box.put_control("c1")
    assert [await box.get() for _ in range(3)] == [
        ("control", "c1"),
        ("audit_action", "n1"),
        ("stats", "s2"),
    ]


async def test_notification_overflow_closes_slow_consumer() -> None:
    box = Outbox(notification_limit=2)
    for i in range(3):
        box.put_notification(f"n{i}")
    assert await box.get() == Close(4008, "slow consumer")
    assert Close.of(CloseCode.SLOW_CONSUMER) == Close(4008, "slow consumer")


async def test_first_close_request_wins() -> None:
    box = Outbox(notification_limit=2)
    box.close(Close.of(CloseCode.GOING_AWAY))
    box.close(Close.of(CloseCode.TIMEOUT))
    assert await box.get() == Close(1001, "going away")


async def test_dropped_stats_are_not_sent() -> None:
    box = Outbox(notification_limit=2)
    box.put_stats("s1")
    box.drop_stats()
    box.put_control("c")
    assert await box.get() == ("control", "c")


async def test_a_close_request_is_heard_without_the_writer() -> None:
    import asyncio

    box = Outbox(notification_limit=1)
    waiter = asyncio.create_task(box.requested())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put_notification("n1")
    box.put_notification("n2")  # overflow
    assert await asyncio.wait_for(waiter, 1) == Close(4008, "slow consumer")
