"""Prometheus metrics for ``<mount>/metrics``, one ``prometheus_client`` registry per instance.

The hot paths (a frame written, a connection attempt) only bump plain ints in a
:class:`Tally`; they are read at scrape time, so a 5000-client fan-out takes no lock per
message. State (connections, bus, producer) is read from its owner at scrape time too.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

__all__ = ["CONTENT_TYPE", "LANES", "Metrics", "State", "Tally"]

CONTENT_TYPE = CONTENT_TYPE_LATEST
#: What a frame is, for ``messages_sent_total{type}``: the outbox lane it left from.
LANES = ("stats", "audit_action", "control")
_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class Tally:
    """Counters bumped on hot paths (plain ints: no lock, read at scrape time)."""

    sent: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANES, 0))
    sent_bytes: dict[str, int] = field(default_factory=lambda: dict.fromkeys(LANES, 0))
    #: (outcome, reason): accepted/-, rejected/<category>, abandoned/-
    attempts: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: close codes the server sent, by code
    closes: Counter[int] = field(default_factory=Counter)


@dataclass(frozen=True)
class State:
    """What is read from the component at scrape time."""

    connections: int
    sockets: int
    bus_up: bool
    bus_reconnects: int
    leading: bool
    producer_changes: int
    snapshots: int
    collector_failures: dict[str, int]
    #: sockets holding a pending slot (waiting for their first ``auth`` message)
    pending: int = 0


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.tally = Tally()
        self.fanout_seconds = Histogram(
            "adminstats_fanout_seconds",
            "Time to hand one message to every subscribed session's outbox",
            ["channel"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.tick_seconds = Histogram(
            "adminstats_tick_seconds",
            "Duration of a stats tick (collect, publish) on this instance",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def observe_fanout(self, channel: str, seconds: float) -> None:
        """One completed fan-out on ``channel`` (the hub's ``observe``)."""
        self.fanout_seconds.labels(channel).observe(seconds)

    def watch(self, read: Callable[[], State]) -> None:
        """Expose the component's state and the tally (call once, with its reader)."""
        self.registry.register(_Exporter(self.tally, read))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _Exporter(Collector):
    def __init__(self, tally: Tally, read: Callable[[], State]) -> None:
        self._tally = tally
        self._read = read

    def collect(self) -> Iterable[CounterMetricFamily | GaugeMetricFamily]:
        return list(self._families())

    def _families(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        state, tally = self._read(), self._tally
        yield _gauge("adminstats_connections", "Authenticated sessions", state.connections)
        yield _gauge("adminstats_sockets", "Open WebSockets, authenticated or not", state.sockets)
        yield _gauge(
            "adminstats_pending_sockets",
            "WebSockets waiting for their first auth message (max_pending)",
            state.pending,
        )
        yield _counter(
            "adminstats_messages_sent",
            "Frames written to clients, by type",
            ["type"],
            ((lane, n) for lane, n in tally.sent.items()),
        )
        yield _counter(
            "adminstats_bytes_sent",
            "UTF-8 payload bytes written to clients, by type",
            ["type"],
            ((lane, n) for lane, n in tally.sent_bytes.items()),
        )
        attempts = CounterMetricFamily(
            "adminstats_connection_attempts",
            "WebSocket connection attempts by outcome (and reason for a rejection)",
            labels=["outcome", "reason"],
        )
        for (outcome, reason), n in sorted(tally.attempts.items()):
            attempts.add_metric([outcome, reason], n)
        yield attempts
        yield _counter(
            "adminstats_closes",
            "Close codes this server sent, by code",
            ["code"],
            ((str(code), n) for code, n in sorted(tally.closes.items())),
        )
        yield CounterMetricFamily(
            "adminstats_slow_consumer_closes",
            "Clients closed with 4008 because their outbox overflowed",
            value=tally.closes.get(4008, 0),
        )
        yield _counter(
            "adminstats_collector_failures",
            "Stats collector runs that failed or timed out, by collector",
            ["collector"],
            sorted(state.collector_failures.items()),
        )
        yield _gauge("adminstats_bus_up", "1 while the bus is connected", int(state.bus_up))
        yield CounterMetricFamily(
            "adminstats_bus_reconnects",
            "Times the bus came back after a loss",
            value=state.bus_reconnects,
        )
        yield _gauge(
            "adminstats_producer_leading", "1 while this instance produces", int(state.leading)
        )
        yield CounterMetricFamily(
            "adminstats_producer_changes",
            "Times this instance became or stopped being the stats producer",
            value=state.producer_changes,
        )
        yield CounterMetricFamily(
            "adminstats_snapshots",
            "Stats snapshots collected by this instance",
            value=state.snapshots,
        )


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)


def _counter(
    name: str, doc: str, labels: list[str], values: Iterable[tuple[str, int]]
) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=labels)
    for label, n in values:
        family.add_metric([label], n)
    return family
