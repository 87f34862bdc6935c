"""The checks before a session: Origin allow-list, client address (trusted proxies, one
header), attempt rate, capacity, the pending budget of token-less sockets, and the
refusal response."""

from ._checks import Admission, PendingBudget, PendingSlot, deny
from ._guard import INVALID, UNKNOWN, AttemptLimiter, Networks, OriginGuard, TokenBucket, client_ip

__all__ = [
    "INVALID",
    "UNKNOWN",
    "Admission",
    "AttemptLimiter",
    "Networks",
    "OriginGuard",
    "PendingBudget",
    "PendingSlot",
    "TokenBucket",
    "client_ip",
    "deny",
]
