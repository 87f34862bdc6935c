"""``asgi_adminstats.server.run(..., workers=K)``: K processes, a listening socket each on
one port (``SO_REUSEPORT``), the connections spread evenly; a worker that dies is
replaced, one that cannot start stops the run, SIGTERM stops them all.

The workers are real: a parent process running ``run`` (tests/helpers/pid_app.py, an app
that answers with its pid), real TCP connections from here."""

from __future__ import annotations

import collections
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from asgi_adminstats import Settings
from asgi_adminstats.server import run
from asgi_adminstats.server._workers import EARLY_EXIT

from helpers.services import free_port
from support.loopback import SECRET

TESTS = Path(__file__).resolve().parent
SHARED_BUS = "redis://127.0.0.1:6379/0"  # checked for its scheme only: no bus is used
CONNECTIONS = 400


def _settings(broadcast_url: str = SHARED_BUS) -> Settings:
    return Settings(jwt_secret=SECRET, broadcast_url=broadcast_url)


def _serving_pid(port: int, timeout: float = 5.0) -> int | None:
    """The pid that answered one new connection; None if nobody listens (yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError:
        return None
    return int(data.rsplit(b"\r\n\r\n", 1)[1]) if b"\r\n\r\n" in data else None


def _until_pids(port: int, count: int, timeout: float) -> set[int]:
    """Connect until ``count`` distinct worker pids have answered (bounded)."""
    seen: set[int] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        if (pid := _serving_pid(port)) is not None:
            seen.add(pid)
        else:
            time.sleep(0.1)
    return seen


@contextlib.contextmanager
def supervisor(
    port: int, workers: int = 2, app: str = "helpers.pid_app:app"
) -> Iterator[subprocess.Popen[str]]:
    code = (
        "from asgi_adminstats import Settings\n"
        "from asgi_adminstats.server import run\n"
        "if __name__ == '__main__':\n"
        f"    run({app!r}, Settings(jwt_secret={SECRET!r}, broadcast_url={SHARED_BUS!r}),"
        f" port={port}, workers={workers}, log_level='warning')\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), str(TESTS.parent)])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the cleanup reaches the workers
    )
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"workers": 0}, ValueError, "workers must be"),
        ({"workers": 2.0}, ValueError, "workers must be"),
        ({"workers": 2, "app": object()}, TypeError, "import string"),
        ({"workers": 2, "settings": _settings("memory://")}, ValueError, "broadcast_url"),
    ],
)
def test_bad_worker_options_fail_before_anything_starts(
    kwargs: dict[str, object], error: type[Exception], match: str
) -> None:
    options: dict[str, object] = {"app": "helpers.pid_app:app", "settings": _settings()}
    options.update(kwargs)
    with pytest.raises(error, match=match):
        run(port=free_port(), **options)  # type: ignore[arg-type]


def test_connections_spread_over_the_workers_and_sigterm_stops_them() -> None:
    port = free_port()
    with supervisor(port) as proc:
        pids = _until_pids(port, 2, timeout=30)
        assert len(pids) == 2, f"one worker answered: {pids}"
        served = collections.Counter(_serving_pid(port) for _ in range(CONNECTIONS))
        assert set(served) == pids  # every connection answered, by one of the two
        # A hash split: each gets about half (a shared socket's first-come split is
        # whatever the processes' timing makes it).
        assert min(served.values()) > CONNECTIONS * 0.3, served
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
    assert not any(_alive(pid) for pid in pids)
    assert _serving_pid(port) is None  # nothing listens any more


def test_a_worker_that_dies_is_replaced() -> None:
    port = free_port()
    with supervisor(port) as proc:
        first = _until_pids(port, 2, timeout=30)
        assert len(first) == 2
        time.sleep(EARLY_EXIT)  # past the start-up, where an exit stops the run instead
        gone = min(first)
        os.kill(gone, signal.SIGKILL)
        after = _until_pids(port, 2, timeout=30)
        assert gone not in after and len(after) == 2 and after & first
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(40) == 0
        assert proc.stderr is not None
        assert f"worker process {gone} exited" in proc.stderr.read()


def test_workers_stop_themselves_when_the_supervisor_is_killed() -> None:
    port = free_port()
    with supervisor(port) as proc:
        pids = _until_pids(port, 2, timeout=30)
        assert len(pids) == 2
        proc.kill()  # SIGKILL: no chance to stop them
        proc.wait(10)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not any(_alive(pid) for pid in pids)
    assert _serving_pid(port) is None


def _alive(pid: int) -> bool:
    # A worker may linger as a zombie of its new parent for a moment: that is gone too.
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


def test_a_worker_that_cannot_start_stops_the_run() -> None:
    port = free_port()
    with supervisor(port, app="helpers.no_such_module:app") as proc:
        code = proc.wait(EARLY_EXIT * 4)
        assert proc.stderr is not None
        err = proc.stderr.read()
    assert code != 0
    assert "within 5 s of its start" in err and "RuntimeError" in err
    assert _serving_pid(port) is None
