"""``run(..., workers=K)``: K processes, each serving the app on a listening socket of its
own, all on one port with ``SO_REUSEPORT``.

uvicorn's ``--workers`` shares one listening socket: whichever process reaches ``accept``
first takes a connection, so the split follows which one happened to be idle (5000
dashboards connecting at once went 1884/3116 here), and every publish then waits for
the fuller process. With a socket per process the kernel picks by the connection's
address hash: an even split for many clients, whatever the processes are busy with.

The parent binds the port without listening (a socket that does not listen takes no
connections; the port stays reserved while workers start and restart), starts the
workers with ``spawn`` (each imports the app from its import string), starts another
for one that exits after it had served a while, and stops them all on SIGINT or SIGTERM.
A worker whose supervisor was killed outright stops itself.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import signal
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

import uvicorn

from ..sockets import bound_socket, listening_socket
from ..telemetry import get_logger

__all__ = ["EARLY_EXIT", "supervise"]

logger = get_logger("asgi_adminstats.server")

#: Seconds: a worker that exits sooner after its start stops the run instead of being
#: restarted (an app that fails to import or start would otherwise restart forever).
EARLY_EXIT = 5.0
_POLL = 0.2
_KILL_WAIT = 5.0  # after SIGKILL


def _serve(app: str, options: dict[str, Any], user_timeout: float | None) -> None:
    """One worker (in its own process)."""
    threading.Thread(target=_orphaned, daemon=True).start()
    sock = listening_socket(
        options["host"], options["port"], user_timeout=user_timeout, reuse_port=True
    )
    uvicorn.Server(uvicorn.Config(app, **options)).run(sockets=[sock])


def _orphaned() -> None:
    """A supervisor killed outright cannot stop its workers: each stops itself (SIGTERM,
    uvicorn's graceful shutdown) once its parent is gone, instead of serving on alone.
    Runs in a thread of its own, blocked on the parent's sentinel (readable when it ends)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
    os.kill(os.getpid(), signal.SIGTERM)


class _Worker:
    __slots__ = ("process", "started")

    def __init__(self, process: BaseProcess) -> None:
        self.process = process
        self.started = time.monotonic()


def supervise(app: str, options: dict[str, Any], user_timeout: float | None, workers: int) -> None:
    """Serve ``app`` (an import string) from ``workers`` processes until SIGINT or SIGTERM.

    ``options`` are ``uvicorn.Config``'s keyword arguments, ``host`` and ``port`` among
    them (port 0: one free port, chosen here, for all). Raises ``RuntimeError`` if a
    worker exits within :data:`EARLY_EXIT` seconds of its start.
    """
    reserved = bound_socket(options["host"], options["port"], reuse_port=True)
    options = {**options, "port": reserved.getsockname()[1]}
    context = multiprocessing.get_context("spawn")

    def start() -> _Worker:
        process = context.Process(
            target=_serve,
            args=(app, options, user_timeout),
            name="adminstats-worker",
        )
        process.start()
        return _Worker(process)

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    handled = (signal.SIGINT, signal.SIGTERM)
    previous = {signum: signal.signal(signum, on_signal) for signum in handled}
    running: list[_Worker] = []
    failure = ""
    try:
        running = [start() for _ in range(workers)]
        logger.info(
            "serving on %s:%s with %d worker processes (pids %s)",
            options["host"],
            options["port"],
            workers,
            ", ".join(str(w.process.pid) for w in running),
        )
        while not stop.wait(_POLL):
            for i, worker in enumerate(running):
                code = worker.process.exitcode
                if code is None:
                    continue
                if time.monotonic() - worker.started < EARLY_EXIT:
                    failure = (
                        f"worker process {worker.process.pid} exited with code {code} "
                        f"within {EARLY_EXIT:g} s of its start (its log says why)"
                    )
                    stop.set()
                    break
                logger.warning(
                    "worker process %s exited with code %s; starting another",
                    worker.process.pid,
                    code,
                )
                running[i] = start()
    finally:
        _stop(running, options.get("timeout_graceful_shutdown"))
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        reserved.close()
    if failure:
        raise RuntimeError(failure)


def _stop(running: list[_Worker], graceful: float | None) -> None:
    """SIGTERM (uvicorn's graceful shutdown: the component closes its sessions with 1001),
    then SIGKILL for any worker still there after the grace period."""
    for worker in running:
        if worker.process.exitcode is None:
            worker.process.terminate()
    deadline = time.monotonic() + (graceful or 30.0) + 5.0
    for worker in running:
        worker.process.join(max(0.0, deadline - time.monotonic()))
        if worker.process.exitcode is None:
            logger.warning("worker process %s did not stop; killed", worker.process.pid)
            worker.process.kill()
            worker.process.join(_KILL_WAIT)
