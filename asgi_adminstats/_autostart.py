"""Starting the component without a lifespan: on its first request, once.

Some servers send no lifespan at all (daphne, uvicorn ``--lifespan off``), and a mounted
app never sees the host's. When no lifespan has started the component, the first request
(or ``record_action``) starts it; concurrent first requests wait on the same start. A
failed start is logged and retried by a later request at most every ``RETRY_SECONDS``.

Nothing announces the server's exit then (no lifespan shutdown), so the start also
arranges the stop, both ways a server ends:

- SIGTERM/SIGINT: ``ExitSignals`` (``_signals.py``) runs ``stop`` before the server's
  handler: clients closed with 1001, the tick finished, the bus and the database closed.
  uvicorn re-raises the signal when it returns, and SIGTERM's default action ends the
  process before any task or ``atexit`` hook runs: the stop has to come before the server's.
- The event loop's end: a task waits to be cancelled, as ``asyncio.run`` does to tasks
  left behind (a server run in-process and stopped without a signal).

``atexit`` could do neither: it cannot await, and a signal's default action skips it.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Awaitable, Callable

from .errors import NotStartedError
from .telemetry import get_logger

__all__ = ["RETRY_SECONDS", "AutoStart"]

logger = get_logger("asgi_adminstats")

#: A failed start is retried by a later request at most this often.
RETRY_SECONDS = 5.0

_NOT_STARTED = (
    "AdminStats is not started: no lifespan has started it (or it has stopped), and it "
    "does not start on requests (Settings.auto_start is off, or a lifespan owns it). Pass "
    "lifespan=stats.lifespan to Starlette/FastAPI (or enter `async with stats.lifespan(app)` "
    "in your own lifespan); AdminStatsMiddleware starts it on the host's lifespan."
)
_FAILED = (
    "AdminStats is not started: starting it on a request (no lifespan came) failed, as "
    f"logged; a later request retries at most every {RETRY_SECONDS:g}s."
)
# Set inside the auto-start's own task: its startup() is not a lifespan's.
_STARTING_HERE: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "adminstats_autostart", default=False
)


class AutoStart:
    """Starts the component on demand while no lifespan has claimed it."""

    def __init__(
        self,
        startup: Callable[[], Awaitable[None]],
        shutdown: Callable[[], Awaitable[None]],
        *,
        enabled: bool,
    ) -> None:
        self._startup = startup
        self._shutdown = shutdown
        self.armed = enabled
        self.failed = False  # the last attempt failed (its error is in the log)
        self._starting: asyncio.Task[None] | None = None
        self._failed_at = -RETRY_SECONDS
        self._last_error = ""
        self._keeper: asyncio.Task[None] | None = None

    def claim(self) -> bool:
        """A lifespan (or the host calling ``startup()``) owns the component from now on.

        True if it was started here already: the stop at the loop's end is then the
        lifespan's shutdown, not ours.
        """
        if _STARTING_HERE.get():
            return False
        self.armed = False
        return self._disown()

    async def ensure(self) -> bool:
        """Start the component unless it is, or a start just failed; True once started."""
        if not self.armed:
            return False
        if self._starting is None:
            if time.monotonic() - self._failed_at < RETRY_SECONDS:
                return False
            self._starting = asyncio.create_task(self._start(), name="adminstats-autostart")
        try:
            # Shielded: a request that goes away must not cancel the others' start.
            await asyncio.shield(self._starting)
        except Exception:
            return False
        return True

    async def require(self, started: bool) -> None:
        """For the public methods: start now if armed, else ``NotStartedError``."""
        if not started and not await self.ensure():
            raise NotStartedError(self.not_started())

    def not_started(self) -> str:
        """Why a request was refused or ``NotStartedError`` raised: what to wire or fix."""
        return _FAILED if self.failed and self.armed else _NOT_STARTED

    async def _start(self) -> None:
        _STARTING_HERE.set(True)
        try:
            await self._startup()
        except Exception as exc:
            self._starting = None
            self._failed_at = time.monotonic()
            self.failed = True
            error = f"{type(exc).__name__}: {exc}"
            if error != self._last_error:  # once per distinct failure, not per request
                self._last_error = error
                logger.error(
                    "adminstats could not start on its first request (no lifespan came): %s; "
                    "requests get 503, retried at most every %gs",
                    error,
                    RETRY_SECONDS,
                )
            raise
        self.failed = False
        self._keeper = asyncio.create_task(self._stop_at_loop_end(), name="adminstats-autostop")
        logger.info(
            "adminstats started on its first request: no lifespan came (daphne, "
            "uvicorn --lifespan off, or a mount without lifespan=stats.lifespan); "
            "it stops on SIGTERM/SIGINT or when the event loop ends"
        )

    def _disown(self) -> bool:
        """Give up the stop (done, or a lifespan's now); True if it was still ours."""
        keeper, self._keeper = self._keeper, None
        if keeper is None:
            return False
        if keeper is not asyncio.current_task():
            keeper.cancel()
        return True

    @property
    def owns_stop(self) -> bool:
        """Started here and not stopped yet: nothing but ``stop`` will stop it."""
        return self._keeper is not None

    async def stop(self, why: str) -> None:
        """Stop what was started here (on the server's exit signal, or the loop's end)."""
        if self._disown():
            self.armed = False  # stopped for good: later requests get 503, not a restart
            await self._shutdown()
            logger.info("adminstats stopped (%s)", why)

    async def _stop_at_loop_end(self) -> None:
        try:
            await asyncio.Event().wait()  # until cancelled: asyncio.run's end cancels it
        finally:
            await self.stop("the event loop ended")
