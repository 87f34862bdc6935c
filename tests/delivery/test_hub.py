"""The hub's fan-out: one text to every subscribed outbox, in slices, in order."""

from __future__ import annotations

import asyncio
import json

from asgi_adminstats import protocol
from asgi_adminstats.delivery import Close, Hub, Outbox


class Member:
    def __init__(
        self, sub: str = "alice", subscriptions: tuple[str, ...] = ("stats", "notifications")
    ) -> None:
        self.subscriptions = set(subscriptions)
        self.outbox = Outbox(notification_limit=10)
        self.sub = sub


async def drain(member: Member) -> list[tuple[str, str]]:
    """What the member's session would write now, in order."""
    frames: list[tuple[str, str]] = []
    while (item := member.outbox.pop()) is not None:
        frames.append(item)
    return frames


class Fanouts:
    """The hub's ``observe`` callback: the channel of each completed fan-out, in order."""

    def __init__(self) -> None:
        self.channels: list[str] = []
        self._more = asyncio.Event()

    def __call__(self, channel: str, seconds: float) -> None:
        self.channels.append(channel)
        self._more.set()

    async def settled(self, count: int) -> list[str]:
        """The channels once ``count`` fan-outs completed (bounded), and a few loop turns
        more in which any further one would have shown up."""

        async def reached() -> None:
            while len(self.channels) < count:
                self._more.clear()
                await self._more.wait()

        await asyncio.wait_for(reached(), 1)
        for _ in range(10):
            await asyncio.sleep(0)
        return self.channels


def members(hub: Hub, n: int) -> list[Member]:
    made = [Member(sub=f"u{i}") for i in range(n)]
    for member in made:
        hub.add(member)
    return made


async def test_a_small_fanout_is_delivered_at_once() -> None:
    seen: list[str] = []
    hub = Hub(slice_size=4, observe=lambda channel, _: seen.append(channel))
    group = members(hub, 4)
    hub.publish_stats("s1")
    assert all(m.outbox._stats == "s1" for m in group)
    assert seen == ["stats"]


async def test_a_large_fanout_yields_to_the_loop_between_slices() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=3, observe=fanouts)
    group = members(hub, 10)
    hub.publish_stats("s1")
    assert not any(m.outbox._stats for m in group), "nothing is handed over synchronously"
    progress: list[int] = []
    for _ in range(4):  # what another callback (a handshake, say) sees between turns
        await asyncio.sleep(0)
        progress.append(sum(m.outbox._stats == "s1" for m in group))
    assert progress[0] == 3 and progress[1] == 6, progress
    assert await fanouts.settled(1) == ["stats"]
    assert all(m.outbox._stats == "s1" for m in group)


async def test_order_is_kept_across_fanouts() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=2, observe=fanouts)
    group = members(hub, 7)
    for i in range(5):
        hub.publish_notification(f"n{i}")
    assert await fanouts.settled(5) == ["notifications"] * 5
    for member in group:
        assert [text for _, text in await drain(member)] == [f"n{i}" for i in range(5)]


async def test_only_the_newest_waiting_snapshot_goes_out() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=2, observe=fanouts)
    group = members(hub, 5)
    hub.publish_notification("n0")
    for i in range(4):
        hub.publish_stats(f"s{i}")
    hub.publish_notification("n1")
    # s0..s2 were still waiting when s3 arrived: one stats fan-out in all, after the
    # notifications (which go first).
    assert await fanouts.settled(3) == ["notifications", "notifications", "stats"]
    assert hub.latest_stats == "s3"
    for member in group:
        assert await drain(member) == [
            ("audit_action", "n0"),
            ("audit_action", "n1"),
            ("stats", "s3"),
        ]


async def test_subscriptions_are_respected() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=1, observe=fanouts)
    stats_only = Member(subscriptions=("stats",))
    feed_only = Member(subscriptions=("notifications",))
    for member in (stats_only, feed_only):
        hub.add(member)
    hub.publish_stats("s")
    hub.publish_notification("n")
    assert sorted(await fanouts.settled(2)) == ["notifications", "stats"]
    assert await drain(stats_only) == [("stats", "s")]
    assert await drain(feed_only) == [("audit_action", "n")]


async def test_close_all_drops_a_fanout_in_progress() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=2, observe=fanouts)
    group = members(hub, 6)
    hub.publish_stats("s")
    await asyncio.sleep(0)  # the first slice is handed over: a fan-out in progress
    hub.publish_notification("n")
    hub.close_all(Close(1001, "going away"))
    await asyncio.sleep(0)
    for member in group:
        assert await member.outbox.closing() == Close(1001, "going away")
        assert member.outbox.pop() is None
    for _ in range(10):  # the fan-outs' turns, had they not been dropped
        await asyncio.sleep(0)
    assert fanouts.channels == []
    assert hub.latest_stats == "s"


async def test_members_leaving_mid_fanout_are_harmless() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=2, observe=fanouts)
    group = members(hub, 6)
    hub.publish_stats("s")
    await asyncio.sleep(0)
    for member in group:
        hub.discard(member)
    assert len(hub) == 0
    assert await fanouts.settled(1) == ["stats"]  # it went on to the end without error
    assert hub.count_subject("u0") == 0


async def test_an_audit_push_goes_ahead_of_a_stats_fanout_in_progress() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=2, observe=fanouts)
    group = members(hub, 20)
    hub.publish_stats("s1")
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    hub.publish_notification("n1")
    for _ in range(12):  # the notification's 10 slices, one per loop turn
        await asyncio.sleep(0)
        if all(m.outbox._notifications for m in group):
            break
    assert all(m.outbox._notifications for m in group)
    got_stats = sum(m.outbox._stats == "s1" for m in group)
    assert got_stats < len(group), "the stats fan-out paused for the push"
    assert await fanouts.settled(2) == ["notifications", "stats"]
    assert all(m.outbox._stats == "s1" for m in group)


def snapshot(connections: int) -> str:
    return protocol.stats_update(data={"online": {"connections": connections}})


def counted(frames: list[tuple[str, str]]) -> list[int]:
    return [json.loads(text)["data"]["online"]["connections"] for _, text in frames]


async def test_a_first_member_waits_through_a_snapshot_that_counts_nobody() -> None:
    # React's StrictMode: a client connects, leaves, and connects again at once; a tick
    # counted in between (the hub empty) says 0 connections, wrong for the second one.
    hub = Hub(slice_size=4)
    hub.publish_stats(snapshot(0))  # the start-up snapshot
    asked: list[str] = []

    def coming() -> bool:  # the producer: "a tick counting it is coming"
        asked.append("tick")
        return True

    hub.on_first = coming
    first = Member("alice")
    hub.add(first)
    hub.discard(first)
    again, other = Member("alice"), Member("bob")
    hub.add(again)
    hub.add(other)  # added while another waits: waits too
    assert asked == ["tick", "tick"]  # each time the hub went from none to one
    hub.publish_stats(snapshot(0))
    assert await drain(again) == [] and await drain(other) == []
    hub.publish_stats(snapshot(2))  # the tick the second connection asked for
    assert counted(await drain(again)) == [2] and counted(await drain(other)) == [2]
    latecomer = Member("carol")
    hub.add(latecomer)  # the latest counts someone now: it is sent at once
    assert counted(await drain(latecomer)) == [2]


async def test_a_member_that_waited_in_vain_gets_the_latest_when_released() -> None:
    hub = Hub(slice_size=4)
    hub.publish_stats(snapshot(0))
    hub.on_first = lambda: True
    member = Member()
    hub.add(member)
    hub.publish_stats(snapshot(0))
    assert await drain(member) == []
    hub.release_waiting()  # the producer's deadline: nothing better came
    assert counted(await drain(member)) == [0]
    hub.publish_stats(snapshot(0))  # no longer waiting: it gets every snapshot
    assert counted(await drain(member)) == [0]


async def test_a_large_fanout_skips_members_waiting_for_a_count() -> None:
    fanouts = Fanouts()
    hub = Hub(slice_size=2, observe=fanouts)
    hub.publish_stats(snapshot(0))
    hub.on_first = lambda: True
    group = members(hub, 5)  # all waiting: the first asked for a tick
    hub.publish_stats(snapshot(0))
    assert await fanouts.settled(2) == ["stats", "stats"]  # the start-up one, then this
    assert all(m.outbox.pop() is None for m in group)
    hub.publish_stats(snapshot(5))
    assert await fanouts.settled(3) == ["stats"] * 3
    for member in group:
        assert counted(await drain(member)) == [5]
