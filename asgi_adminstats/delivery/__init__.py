"""Getting encoded messages to this instance's connections: the hub (fan-out), each
connection's bounded outbox and its writer, and the eager send."""

from ._eager import start_eagerly
from ._hub import Hub, Member
from ._outbox import Close, Express, Outbox
from ._tick import StatsTick
from ._writer import TextSink, Writer

__all__ = [
    "Close",
    "Express",
    "Hub",
    "Member",
    "Outbox",
    "StatsTick",
    "TextSink",
    "Writer",
    "start_eagerly",
]
