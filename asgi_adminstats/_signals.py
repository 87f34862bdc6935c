"""Closing the component's clients with 1001 on SIGTERM/SIGINT, before the server does.

Every server closes the WebSockets it holds on its own when told to exit, each with its
own code and none with 1001: uvicorn with 1012 within 0.1 s of the signal (before the
lifespan shutdown), hypercorn with 1011 after its graceful timeout, granian and daphne
with no close frame. So the component hooks the signal itself: its handler wraps the
server's, runs an action first (bounded by ``STOP_SECONDS``), then puts the server's
handler back and raises the signal again, so the server shuts down as it would have.

- Started by a lifespan, the action closes the clients with 1001 and waits until they are
  gone; the lifespan's shutdown does the rest.
- Started on a request (no lifespan: daphne), it is the whole stop (``AutoStart.stop``):
  nothing else would stop it, and SIGTERM's default action ends the process as soon as the
  server's handler returns.

A server that uses ``loop.add_signal_handler`` (hypercorn ``--workers 0``, granian's
workers) hears the signal at the same time through the loop's wakeup fd, which a
Python-level handler does not replace: its shutdown starts at once, and the 1001 still
goes out first (hypercorn waits for its graceful timeout; granian, at times, does not).
Where the app's process never gets the signal (hypercorn's worker processes, told by
their parent through a shared event) or the loop is not in the main thread, nothing is
hooked and the server's own close stands (docs/PROTOCOL.md has each server's).
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

from ._autostart import AutoStart
from .delivery import Close, Hub
from .protocol import CloseCode
from .telemetry import get_logger

__all__ = ["DRAIN_SECONDS", "STOP_SECONDS", "ExitSignals", "on_exit"]

logger = get_logger("asgi_adminstats")

#: How long the action on a signal may hold back the server's own shutdown.
STOP_SECONDS = 15.0

#: How long the 1001 closes may take before the server's own shutdown goes on.
DRAIN_SECONDS = 5.0

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def on_exit(auto: AutoStart, hub: Hub) -> Callable[[str], Awaitable[None]]:
    """The action on the server's exit signal: the whole stop if it was started on a
    request, else close the clients with 1001 (the lifespan's shutdown follows)."""

    async def act(why: str) -> None:
        if auto.owns_stop:
            await auto.stop(why)
        else:
            await drain(hub)

    return act


async def drain(hub: Hub) -> None:
    """Close every client with 1001 and wait (bounded) until their sessions have ended,
    so that the close frames are out before the server closes the sockets its own way."""
    hub.close_all(Close.of(CloseCode.GOING_AWAY))
    for _ in range(int(DRAIN_SECONDS / 0.01)):
        if not len(hub):
            return
        await asyncio.sleep(0.01)


class ExitSignals:
    """Runs ``action(why)`` on SIGINT/SIGTERM ahead of the server's own handler."""

    def __init__(self, action: Callable[[str], Awaitable[None]]) -> None:
        self._action = action
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wrapped: dict[int, Any] = {}  # signal -> the server's handler
        self._acting: asyncio.Future[None] | None = None

    @property
    def installed(self) -> bool:
        return bool(self._wrapped)

    def install(self) -> None:
        """Wrap the current SIGINT/SIGTERM handlers (from the running loop's thread)."""
        if self._wrapped:
            return
        self._loop = asyncio.get_running_loop()
        self._acting = None
        for sig in _SIGNALS:
            handler = signal.getsignal(sig)
            if handler is None or handler == signal.SIG_IGN:
                continue  # installed from C (cannot be put back), or ignored anyway
            try:
                signal.signal(sig, self._on_signal)
            except ValueError:  # not the main thread
                logger.debug("adminstats: not in the main thread, signals are not hooked")
                return
            self._wrapped[sig] = handler

    def remove(self) -> None:
        """Put the server's handlers back, unless something replaced ours since."""
        wrapped, self._wrapped = self._wrapped, {}
        for sig, handler in wrapped.items():
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        loop = self._loop
        if self._acting is not None or loop is None or loop.is_closed():
            self._pass_on(sig)  # a second signal: no more waiting
            return
        loop.call_soon_threadsafe(self._begin, sig)

    def _begin(self, sig: int) -> None:
        if self._acting is None:
            self._acting = asyncio.ensure_future(self._act_then_pass_on(sig))

    async def _act_then_pass_on(self, sig: int) -> None:
        wrapped = dict(self._wrapped)
        try:
            # Bounded: a bus that hangs must not hold back the server's own shutdown.
            await asyncio.wait_for(self._action(f"signal {signal.Signals(sig).name}"), STOP_SECONDS)
        except TimeoutError:
            logger.warning("adminstats did not stop within %gs; shutting down anyway", STOP_SECONDS)
        finally:
            self._wrapped = wrapped
            self.remove()
            signal.raise_signal(sig)  # the server's handler now, as if it came just now

    def _pass_on(self, sig: int) -> None:
        handler = self._wrapped.get(sig, signal.SIG_DFL)
        self.remove()
        signal.signal(sig, handler)
        signal.raise_signal(sig)
