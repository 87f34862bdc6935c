"""One WebSocket connection: authentication, the reader, its timers (an introspected
token's re-check among them), and the transport it speaks through (its writes are a
``delivery.Writer``'s)."""

from ._credential import Credential
from ._deadlines import Expiry, Heartbeat
from ._session import Session
from ._transport import StarletteTransport, Transport

__all__ = ["Credential", "Expiry", "Heartbeat", "Session", "StarletteTransport", "Transport"]
