"""The audit log: inserts checked and redacted to the public fields, the feed that pushes
committed actions (and replays them after an outage), and the PostgreSQL trigger
(with the producer's listener for it when the bus is elsewhere)."""

from ._feed import AuditFeed
from ._listener import TriggerListener
from ._log import AUDIT_FIELDS, MAX_LENGTHS, AuditLog, PendingActions, redact
from ._trigger import AuditTrigger, audit_trigger_installed, install_audit_trigger
from ._watcher import AuditWatcher

__all__ = [
    "AUDIT_FIELDS",
    "MAX_LENGTHS",
    "AuditFeed",
    "AuditLog",
    "AuditTrigger",
    "AuditWatcher",
    "PendingActions",
    "TriggerListener",
    "audit_trigger_installed",
    "install_audit_trigger",
    "redact",
]
