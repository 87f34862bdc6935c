"""A Python client for the adminstats WebSocket (docs/PROTOCOL.md).

:class:`AdminStatsClient` keeps one connection open across network faults and server
restarts: it answers the server's heartbeat, refreshes its token when asked, resubscribes
with ``since`` after a reconnect so missed audit actions are replayed, and drops the
duplicates that a replay and live pushes can produce. It needs the ``websockets`` package.

.. code-block:: python

    async with AdminStatsClient("wss://example.com/admin/ws", token=token) as client:
        async for message in client:
            print(message["type"])

``await client.history()`` returns the server's snapshot history (the recent snapshots'
figures by dotted path, oldest first), for charts that start with the last hour.
"""

from .._backoff import backoff_delay
from ._client import AdminStatsClient, State
from ._errors import ClientError, ConnectionRejected, HistoryUnavailable, ReconnectFailed
from ._token import TokenSource

__all__ = [
    "AdminStatsClient",
    "ClientError",
    "ConnectionRejected",
    "HistoryUnavailable",
    "ReconnectFailed",
    "State",
    "TokenSource",
    "backoff_delay",
]
