"""The bus between instances and what runs over it: the broadcaster wrapper, the engines
that heal (memory, Redis, PostgreSQL; drivers imported lazily), the producer lease, and
the stats producer with the cluster-wide connection count."""

from ._bus import PAYLOAD_LIMITS, Bus, PayloadTooLarge
from ._engines import (
    BusStatus,
    HealingBackend,
    create_broadcast,
    create_listener,
    engine_of,
    masked_url,
)
from ._lease import Lease, LocalLease, PostgresLease, RedisLease, create_lease
from ._producer import Presence, Producer

__all__ = [
    "PAYLOAD_LIMITS",
    "Bus",
    "BusStatus",
    "HealingBackend",
    "Lease",
    "LocalLease",
    "PayloadTooLarge",
    "PostgresLease",
    "Presence",
    "Producer",
    "RedisLease",
    "create_broadcast",
    "create_lease",
    "create_listener",
    "engine_of",
    "masked_url",
]
