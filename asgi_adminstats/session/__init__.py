"""One WebSocket connection: authentication, the reader and writer, and its timers."""

from ._deadlines import Expiry, Heartbeat
from ._session import Session

__all__ = ["Expiry", "Heartbeat", "Session"]
