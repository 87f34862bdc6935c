"""Getting encoded messages to this instance's connections: the hub (fan-out), each
connection's bounded outbox and its writer, the eager send, and the snapshot history."""

from ._eager import start_eagerly
from ._history import MAX_SERIES, History
from ._hub import Hub, Member
from ._outbox import Close, Express, Outbox
from ._tick import StatsTick
from ._writer import TextSink, Writer

__all__ = [
    "MAX_SERIES",
    "Close",
    "Express",
    "History",
    "Hub",
    "Member",
    "Outbox",
    "StatsTick",
    "TextSink",
    "Writer",
    "start_eagerly",
]
