"""One frame to many connections, each send awaited in one coroutine the caller steps.

Stepping each ASGI ``send`` by hand (``start_eagerly``) costs a ``StopIteration`` per
frame; an ``await`` in a coroutine does not, so a slice of a fan-out runs as one
coroutine that awaits each idle connection's send in turn. The rare send that must wait
for its socket stops that coroutine: it goes on as that connection's write in progress
(a task, which then writes nothing else), and the rest of the slice goes on at once in
a new coroutine.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from collections.abc import Set as AbstractSet
from typing import Protocol, TypeVar

from ..telemetry import Tally
from ._eager import finish
from ._outbox import Direct, Outbox

__all__ = ["Subscriber", "fan_out"]

T = TypeVar("T")


class Subscriber(Protocol):
    outbox: Outbox

    @property
    def subscriptions(self) -> AbstractSet[str]: ...


class _Detach:
    """The coroutine's state: the connection whose send it awaits, and whether the rest
    of the slice went on without it."""

    __slots__ = ("detached", "direct")

    def __init__(self) -> None:
        self.detached = False
        self.direct: Direct | None = None


def fan_out(
    members: Sequence[Subscriber],
    channel: str,
    lane: str,
    offer: Callable[[Outbox, T], str | None],
    item: T,
    tally: Tally,
) -> None:
    """``offer(outbox, item)`` for each member subscribed to ``channel``: the text to
    write now, or None (the outbox queued or skipped it); written texts count as
    ``lane`` in ``tally``. Returns when every send was made or handed to a task."""
    rest = iter(members)
    while True:
        state = _Detach()
        coro = _drive(rest, channel, lane, offer, item, state, tally)
        try:
            waiting = coro.send(None)
        except StopIteration:
            return
        # A send must wait: it finishes in a task of its own (the connection's write in
        # progress) and this coroutine ends there; the rest continue in a new one.
        state.detached = True
        direct = state.direct
        assert direct is not None  # set before every await
        direct.adopt(asyncio.get_running_loop().create_task(finish(coro, waiting)))


async def _drive(
    members: Iterator[Subscriber],
    channel: str,
    lane: str,
    offer: Callable[[Outbox, T], str | None],
    item: T,
    state: _Detach,
    tally: Tally,
) -> None:
    # Counted here and added once at the end, not per send through the writer: two dict
    # updates per delivery were a tenth of the component's own cost of one.
    frames = size = 0
    try:
        for member in members:
            if channel not in member.subscriptions:
                continue
            outbox = member.outbox
            text = offer(outbox, item)
            if text is None:
                continue
            direct = outbox.direct
            assert direct is not None  # an outbox offers a text only with a ready writer
            state.direct = direct
            try:
                await direct.sink.send_text(text)
            except Exception as exc:  # never let one connection break the fan-out
                direct.failed(exc)
            else:
                frames += 1
                # isascii() is O(1) in CPython: no encoding per frame for ASCII JSON.
                size += len(text) if text.isascii() else len(text.encode())
            if state.detached:
                return
    finally:
        if frames:
            tally.sent[lane] += frames
            tally.sent_bytes[lane] += size
