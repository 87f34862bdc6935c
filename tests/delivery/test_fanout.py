"""The hub's fan-out through real writers: each idle connection's send awaited in one
coroutine; one that must wait goes on alone as that connection's write, the rest at
once; a failing send closes only its connection."""

from __future__ import annotations

import asyncio

from asgi_adminstats.delivery import Close, Hub, Writer
from asgi_adminstats.telemetry import Tally

from helpers.sinks import Sink, settle


class Member:
    def __init__(self, tally: Tally, subscriptions: tuple[str, ...] = ("stats",)) -> None:
        self.sink = Sink()
        self.writer = Writer(self.sink, 10, tally=tally, name="m", gone=(OSError,))
        self.writer.start()
        self.outbox = self.writer.outbox
        self.subscriptions = frozenset(subscriptions)
        self.sub = "alice"


def stats(seq: int) -> str:
    return f'{{"type":"stats_update","data":{{"n":{seq}}}}}'


async def test_every_idle_member_gets_the_frame_before_publish_returns() -> None:
    tally = Tally()
    hub = Hub(slice_size=100, tally=tally)
    members = [Member(tally) for _ in range(5)]
    for member in members:
        hub.add(member)
    hub.publish_stats(stats(1))  # inline: no task, nothing awaited
    assert [m.sink.frames for m in members] == [[stats(1)]] * 5
    assert all(m.writer.writing is None for m in members)
    assert tally.sent["stats"] == 5
    assert tally.sent_bytes["stats"] == 5 * len(stats(1))


async def test_a_waiting_send_holds_back_only_its_own_member() -> None:
    tally = Tally()
    hub = Hub(slice_size=100, tally=tally)
    members = [Member(tally) for _ in range(4)]
    for member in members:
        hub.add(member)
    stuck = members[1]
    stuck.sink.room.clear()
    hub.publish_stats(stats(1))
    # The ones after the stuck member got it at once, from the same fan-out.
    assert [m.sink.frames for m in members] == [[stats(1)], [], [stats(1)], [stats(1)]]
    assert stuck.writer.writing is not None  # its write goes on as a task
    hub.publish_stats(stats(2))
    hub.publish_stats(stats(3))  # replaces 2 in the stuck member's stats slot
    assert members[3].sink.frames == [stats(1), stats(2), stats(3)]
    assert stuck.sink.frames == []
    stuck.sink.room.set()
    await settle(stuck.sink, 2)
    assert stuck.sink.frames == [stats(1), stats(3)]
    assert tally.sent["stats"] == 3 * 3 + 2


async def test_unsubscribed_members_are_skipped_and_notifications_fan_out_too() -> None:
    tally = Tally()
    hub = Hub(slice_size=100, tally=tally)
    watcher = Member(tally, ("notifications",))
    viewer = Member(tally, ("stats",))
    hub.add(watcher)
    hub.add(viewer)
    hub.publish_stats(stats(1))
    action = '{"type":"audit_action","admin":"zoë"}'
    hub.publish_notification(action)
    assert watcher.sink.frames == [action]
    assert viewer.sink.frames == [stats(1)]
    assert tally.sent["audit_action"] == 1 and tally.sent["stats"] == 1
    assert tally.sent_bytes["audit_action"] == len(action.encode()) == len(action) + 1


async def test_a_failing_send_closes_only_its_member_and_a_gone_client_nothing() -> None:
    tally = Tally()
    hub = Hub(slice_size=100, tally=tally)
    broken, gone, fine = Member(tally), Member(tally), Member(tally)
    broken.sink.error = RuntimeError("boom")
    gone.sink.error = OSError("reset")
    for member in (broken, gone, fine):
        hub.add(member)
    hub.publish_stats(stats(1))
    assert fine.sink.frames == [stats(1)]
    assert broken.outbox.requested_close == Close(1011, "internal error")
    assert gone.outbox.requested_close is None  # the reader sees a client that left
    assert tally.sent["stats"] == 1


async def test_a_send_failing_after_waiting_closes_its_member_later() -> None:
    tally = Tally()
    hub = Hub(slice_size=100, tally=tally)
    slow, fine = Member(tally), Member(tally)
    slow.sink.room.clear()
    slow.sink.late_error = RuntimeError("boom")
    hub.add(slow)
    hub.add(fine)
    hub.publish_stats(stats(1))
    assert fine.sink.frames == [stats(1)]
    slow.sink.room.set()
    for _ in range(100):
        if slow.outbox.requested_close is not None:
            break
        await asyncio.sleep(0.001)
    assert slow.outbox.requested_close == Close(1011, "internal error")
    assert slow.writer.writing is None


async def test_sliced_fan_out_reaches_everyone_in_order() -> None:
    tally = Tally()
    hub = Hub(slice_size=3, tally=tally)
    members = [Member(tally) for _ in range(10)]
    for member in members:
        hub.add(member)
    members[4].sink.room.clear()
    for seq in (1, 2):
        hub.publish_stats(stats(seq))
        await asyncio.sleep(0)
    for _ in range(200):
        if all(len(m.sink.frames) == 2 for i, m in enumerate(members) if i != 4):
            break
        await asyncio.sleep(0.001)
    assert all(m.sink.frames[-1] == stats(2) for i, m in enumerate(members) if i != 4)
    members[4].sink.room.set()
    await settle(members[4].sink, 2)
    assert members[4].sink.frames[-1] == stats(2)
