"""Audit actions to ``notifications`` subscribers: each id pushed once per instance.

The bus carries only ids (a PostgreSQL trigger can send them from any writer); every
instance reads and redacts the row itself. After a bus outage the instance replays what
it missed from the audit table, the source of truth, and publishes again the ids of its
own actions that the bus could not take meanwhile. Without the trigger, the producer's
``AuditWatcher`` publishes the ids of rows that other writers inserted.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from .. import protocol
from ..bus import Bus, BusStatus
from ..delivery import Hub
from ..settings import Settings
from ..telemetry import get_logger
from ._log import AuditLog
from ._trigger import AuditTrigger
from ._watcher import AuditWatcher

__all__ = ["AuditFeed"]

logger = get_logger("asgi_adminstats.audit")

_REMEMBER = 2048  # ids already pushed, for de-duplication of live and replayed copies
# How far below the highest id pushed a replay looks again: ids another writer committed
# before a record_action id above them may not have been published yet.
_LOOK_BACK = 200
_REPLAY_PAGES = 10  # a replay reads at most this many pages of REPLAY_LIMIT rows


class AuditFeed:
    def __init__(
        self,
        audit: AuditLog,
        hub: Hub,
        bus: Bus,
        *,
        trigger: AuditTrigger,
        watch_interval: float = 0.0,
    ) -> None:
        self._audit = audit
        self.trigger = trigger
        self._hub = hub
        self._bus = bus
        self._order: deque[int] = deque()
        self._seen: set[int] = set()
        self._local_only: set[int] = set()  # replayed here, not known to be on the bus
        self.last_id = 0
        self.start_id = 0  # the table's highest id at start: older rows are history
        self._replay_from: int | None = None
        self._unpublished: deque[int] = deque(maxlen=protocol.REPLAY_LIMIT)
        #: Runs while this instance is the producer (``Producer``'s ``on_leading``).
        self.watcher = AuditWatcher(self, audit, watch_interval)

    @classmethod
    def create(
        cls, settings: Settings, audit: AuditLog, hub: Hub, bus: Bus, status: BusStatus
    ) -> AuditFeed:
        """The feed of the settings' audit table, its trigger and its watcher."""
        trigger = AuditTrigger(audit.database, settings, bus_engine=status.backend)
        return cls(audit, hub, bus, trigger=trigger, watch_interval=settings.audit_watch_interval)

    async def start(self) -> None:
        """Read where the audit table stands and whether the trigger is (or gets) installed."""
        try:
            self.last_id = self.start_id = await self._audit.max_id()
            await self.trigger.start()  # installs it if the settings ask
        except Exception as exc:  # a broken database degrades pushes, it does not stop us
            first = (str(exc).splitlines() or [""])[0]  # SQLAlchemy adds the SQL and a link
            logger.warning("reading the audit table failed: %s: %s", type(exc).__name__, first)

    @property
    def pushed_by(self) -> str:
        """Who pushes rows from other writers (for the start-up line)."""
        if self.trigger.pushes:
            return "by database trigger"
        if self.trigger.listens:
            return "by the producer's trigger listener and record_action"
        if self.watcher.interval > 0:
            return "by the producer's audit-table watcher and record_action"
        return "by record_action only"

    @property
    def outage(self) -> bool:
        """Between ``bus_down`` and the replay of ``bus_up``: the replay covers it."""
        return self._replay_from is not None

    def pushed(self, action_id: int) -> bool:
        """Whether ``action_id`` went out already: pushed here and known to be on the bus
        (a replay pushes to this instance's clients only; the others replay on their own,
        at another moment, so the producer publishes what it replayed again)."""
        return action_id in self._seen and action_id not in self._local_only

    def push(self, data: dict[str, Any], *, replayed: bool = False) -> bool:
        """Push one redacted action unless already pushed; True if it was sent."""
        action_id = int(data["id"])
        if action_id in self._seen:
            return False
        self._remember(action_id)
        self._hub.publish_notification(protocol.audit_action(data=data, replayed=replayed))
        return True

    async def publish(self, data: dict[str, Any]) -> None:
        """A committed action: to this instance's clients now, to the others by the bus.

        Unless the PostgreSQL trigger published the id on commit already. An id the bus
        cannot take now is published again when it is back (``bus_up``).
        """
        self.push(data)
        self._local_only.discard(int(data["id"]))
        if not self.trigger.pushes and not await self._bus.publish_quietly("audit", data["id"]):
            self._unpublished.append(int(data["id"]))

    async def on_bus(self, payload: str) -> None:
        """An id from the bus (``record_action`` or the PostgreSQL trigger)."""
        try:
            action_id = int(payload)
        except ValueError:
            logger.warning("ignored a malformed audit id on the bus")
            return
        self._local_only.discard(action_id)
        if action_id in self._seen:
            return
        data = await self._audit.get(action_id)
        if data is not None:
            self.push(data)

    async def bus_down(self) -> None:
        """Note where to replay from (a coroutine: the healing backend awaits callbacks)."""
        if self._replay_from is None:
            # Below the highest id pushed: rows another writer committed before a
            # record_action id may still be unpublished (pushed ones are skipped).
            self._replay_from = max(self.start_id, self.last_id - _LOOK_BACK)

    async def bus_up(self) -> None:
        """The bus is back: replay what it missed, then publish the ids it could not take."""
        await self._replay()
        while self._unpublished:
            action_id = self._unpublished.popleft()
            if not await self._bus.publish_quietly("audit", str(action_id)):
                self._unpublished.appendleft(action_id)
                break

    async def _replay(self) -> None:
        """Replay what arrived while the bus was down."""
        since, self._replay_from = self._replay_from, None
        if since is None:
            return
        actions: list[dict[str, Any]] = []
        for _ in range(_REPLAY_PAGES):
            page = await self._audit.since(since, protocol.REPLAY_LIMIT)
            actions += [a for a in page if int(a["id"]) not in self._seen]
            if len(page) < protocol.REPLAY_LIMIT or len(actions) >= protocol.REPLAY_LIMIT:
                break
            since = int(page[-1]["id"])
        if len(actions) >= protocol.REPLAY_LIMIT:
            # The rest is left to the snapshot's recent actions: the watcher, if any,
            # resumes after it rather than pushing it as live.
            actions = actions[: protocol.REPLAY_LIMIT]
            self.last_id = max(self.last_id, await self._audit.max_id())
        replayed = [int(a["id"]) for a in actions if self.push(a, replayed=True)]
        self._local_only.update(replayed)
        if replayed:
            logger.info("replayed %d audit actions missed during the bus outage", len(replayed))

    def _remember(self, action_id: int) -> None:
        self._seen.add(action_id)
        self._order.append(action_id)
        if len(self._order) > _REMEMBER:
            forgotten = self._order.popleft()
            self._seen.discard(forgotten)
            self._local_only.discard(forgotten)
        self.last_id = max(self.last_id, action_id)
