"""One WebSocket connection: authentication, the reader, its timers, and the transport
it speaks through (its writes are a ``delivery.Writer``'s)."""

from ._deadlines import Expiry, Heartbeat
from ._session import Session
from ._transport import StarletteTransport, Transport

__all__ = ["Expiry", "Heartbeat", "Session", "StarletteTransport", "Transport"]
