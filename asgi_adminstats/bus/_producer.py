"""The stats tick in a cluster: who produces, and the cluster-wide connection count.

Every tick each instance reports its own connection count on the bus. With the bus up,
the lease holder collects one snapshot (summing the fresh reports) and publishes it;
the others only fan out what arrives. With the bus down, every instance collects a
snapshot for its own clients, marked ``meta.local``. The producer ticks every
``stats_interval`` on a task of its own, and at once when an instance gets its first
client while the latest snapshot counts none: that client would otherwise see "0
connections" for up to an interval (the hub holds that one back meanwhile: see
``Hub.add``). In a cluster the producer ticks at once on such an instance's report.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from .. import protocol
from ..delivery import Hub
from ..settings import Settings
from ..telemetry import get_logger
from ._bus import Bus
from ._engines import BusStatus
from ._lease import Lease, create_lease

if TYPE_CHECKING:
    # Only the type: stats imports the audit feed, which imports this package.
    from ..stats import StatsEngine

__all__ = ["Presence", "Producer"]

logger = get_logger("asgi_adminstats.cluster")

_MAX_INSTANCES = 1000  # bounds the report table against a flood of made-up names
#: How long the first client of an instance waits for the snapshot that counts it before
#: it gets the latest (older) one: our tick, or the producer's after our report, is ms.
_FIRST_CLIENT_WAIT = 1.0


class Presence:
    """Connection counts reported by the other instances, kept while fresh."""

    def __init__(self, instance: str, freshness: float) -> None:
        self._instance = instance
        self._freshness = freshness
        self._reports: dict[str, tuple[int, float]] = {}
        #: Told when another instance reports its first client (0 or unknown before).
        self.on_first: Callable[[], None] | None = None

    def on_report(self, payload: str) -> None:
        report = json.loads(payload)
        name, count = report.get("instance"), report.get("connections")
        if name == self._instance or not isinstance(name, str) or not isinstance(count, int):
            return
        if name not in self._reports and len(self._reports) >= _MAX_INSTANCES:
            return
        before = self._reports.get(name, (0, 0.0))[0]
        self._reports[name] = (count, time.monotonic())
        if before == 0 and count > 0 and self.on_first is not None:
            self.on_first()

    def total(self, local: int) -> int:
        cutoff = time.monotonic() - self._freshness
        for name in [n for n, (_, seen) in self._reports.items() if seen < cutoff]:
            del self._reports[name]
        return local + sum(count for count, _ in self._reports.values())

    def report(self, local: int) -> str:
        return json.dumps({"instance": self._instance, "connections": local})


class Producer:
    def __init__(
        self,
        *,
        engine: StatsEngine,
        bus: Bus,
        status: BusStatus,
        lease: Lease,
        hub: Hub,
        presence: Presence,
        interval: float,
        grace: float,
        observe_tick: Callable[[float], None],
        on_leading: Callable[[bool], Awaitable[None]] | None = None,
    ) -> None:
        self._engine = engine
        self._bus = bus
        self._status = status
        self._lease = lease
        self._hub = hub
        self._presence = presence
        self._interval = interval
        self._grace = grace  # how long a tick in flight may take to finish at shutdown
        self._observe_tick = observe_tick
        self._on_leading = on_leading  # e.g. the audit watcher runs on the producer only
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()  # a tick is wanted now (see ``wake``)
        self._release: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self.leading = False
        self.ticks = 0
        self.changes = 0  # became or stopped being the producer (for the metrics)

    @classmethod
    def create(
        cls,
        settings: Settings,
        *,
        engine: StatsEngine,
        bus: Bus,
        status: BusStatus,
        hub: Hub,
        observe_tick: Callable[[float], None],
        on_leading: Callable[[bool], Awaitable[None]] | None = None,
    ) -> Producer:
        """The producer of the settings' cluster; subscribes the presence reports on ``bus``."""
        presence = Presence(settings.instance_name, freshness=settings.stats_interval * 2.5)
        bus.on("presence", presence.on_report)
        producer = cls(
            engine=engine,
            bus=bus,
            status=status,
            lease=create_lease(settings),
            hub=hub,
            presence=presence,
            interval=settings.stats_interval,
            grace=settings.collector_deadline + 1,
            observe_tick=observe_tick,
            on_leading=on_leading,
        )
        hub.on_first = producer.wake
        presence.on_first = producer.wake_if_leading
        return producer

    def start(self) -> None:
        """Tick every interval from now on (after ``first_tick``), until ``close``."""
        self._stopping = asyncio.Event()
        self._woken = asyncio.Event()
        self._task = asyncio.create_task(self._tick_forever(), name="adminstats-tick")

    def wake(self) -> bool:
        """A first client where the latest snapshot counts nobody: tick now, not up to an
        interval later. True when a snapshot counting it is coming (ours, or the
        producer's after our report). Other counts wait for the next tick as before:
        one extra tick when a cluster goes from no admin to one, no more."""
        if self._task is None or self._stopping.is_set() or not self._hub.counts_nobody():
            return False  # not ticking yet (start-up), stopping, or nothing to correct
        self._woken.set()
        return True

    def wake_if_leading(self) -> None:
        """Another instance's first client: the producer counts it now (if it counted
        nobody)."""
        if self.leading:
            self.wake()

    async def tick(self) -> None:
        """One tick: collect and publish if this instance produces (timed for the metrics)."""
        started = time.perf_counter()
        try:
            await self._tick()
        finally:
            self._observe_tick(time.perf_counter() - started)

    async def publish(self, data: dict[str, Any]) -> None:
        """A snapshot made elsewhere, delivered as a tick's: on the bus while it is up."""
        await self._deliver(data, publish=self._status.up)

    async def _tick_forever(self) -> None:
        next_at = time.monotonic() + self._interval
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._woken.wait(), max(0.0, next_at - time.monotonic()))
            if self._stopping.is_set():
                return
            woken = self._woken.is_set()
            self._woken.clear()
            if not woken:
                next_at += self._interval  # a woken tick is extra: the beat stays
            try:
                await self.tick()
            except Exception:
                logger.exception("stats tick failed")
            finally:
                if woken:
                    self._release_soon()
            # Skip ticks we were too slow for instead of bursting to catch up.
            next_at = max(next_at, time.monotonic())

    def _release_soon(self) -> None:
        # Our snapshot comes back through the bus, another producer's after our report:
        # clients still waiting for one when none came get the latest.
        if self._release is not None:
            self._release.cancel()
        wait = min(_FIRST_CLIENT_WAIT, self._interval)
        self._release = asyncio.get_running_loop().call_later(wait, self._hub.release_waiting)

    async def _tick(self) -> None:
        local = len(self._hub)
        if not self._status.up:
            # Cut off from the cluster: let another instance produce for it (a PostgreSQL
            # advisory lock would otherwise outlive our listener), and feed our own.
            if self._lease.held:
                await self._lease.release()
            await self._set_leading(False)
            await self._deliver(await self._snapshot(scope_local=True), publish=False)
            return
        await self._bus.publish_quietly("presence", self._presence.report(local))
        leading = await self._lease.hold()
        await self._set_leading(leading)
        if leading:
            data = await self._snapshot(scope_local=False, cluster=True)
            await self._deliver(data, publish=True)

    @property
    def collector_failures(self) -> dict[str, int]:
        return dict(self._engine.failures)

    @property
    def failing_collectors(self) -> list[str]:
        return self._engine.failing

    @property
    def stats_queries(self) -> int:
        return self._engine.queries

    async def _set_leading(self, leading: bool) -> None:
        if leading != self.leading:
            self.leading = leading
            self.changes += 1
            logger.info(
                "this instance %s the stats producer", "is now" if leading else "is no longer"
            )
            if self._on_leading is not None:
                await self._on_leading(leading)

    async def close(self) -> None:
        if self._release is not None:
            self._release.cancel()
            self._release = None
        if self._task is not None:
            # Let a tick in flight finish: cancelling queries mid-way can wedge a pool.
            self._stopping.set()
            self._woken.set()  # out of its wait
            try:
                await asyncio.wait_for(self._task, self._grace)
            except TimeoutError:
                logger.warning("the last stats tick did not finish in time; cancelled")
            self._task = None
        if self.leading and self._on_leading is not None:
            await self._on_leading(False)
        await self._lease.close()
        self.leading = False

    async def first_tick(self) -> None:
        """At start-up: take part in the lease at once (its connection opens now, not at
        the first takeover), and give this instance's clients a first snapshot."""
        leading = await self._lease.hold() if self._status.up else False
        await self._set_leading(leading)
        await self._deliver(
            await self._snapshot(scope_local=not leading, cluster=True), publish=leading
        )

    async def _snapshot(self, *, scope_local: bool, cluster: bool = False) -> dict[str, Any]:
        self.ticks += 1

        def connections() -> int:
            # Counted once the collectors are done: a client that left or came while
            # they ran is (not) counted, as of the snapshot's collectedAt.
            local = len(self._hub)
            return self._presence.total(local) if cluster else local

        return await self._engine.snapshot(
            connections=connections,
            meta={"local": scope_local, "bus": self._status.as_dict()},
        )

    async def _deliver(self, data: dict[str, Any], *, publish: bool) -> None:
        text = protocol.stats_update(data=data)
        if publish:
            try:
                await self._bus.publish("stats", text)
                return
            except Exception as exc:
                # Local clients still get it: a broken bus degrades the cluster only.
                logger.warning(
                    "publishing the snapshot failed (%s); delivering locally", type(exc).__name__
                )
        self._hub.publish_stats(text)
