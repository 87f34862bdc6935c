"""The exit-signal hook: the component's action runs before the server's handler sees
SIGTERM/SIGINT, the signal then reaches the server as if it came just then, and a
second signal is not held back. The server's-side view (every server, every host) is
tests/hosts/; here a lifespan-started component under a real uvicorn process, and the
hook in this process with a recording handler standing in for the server's."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from asgi_adminstats._signals import ExitSignals

from helpers.hostproc import host_process
from support.loopback import client, closed, recv, token

_HOST_APP = """
import logging
from starlette.applications import Starlette
from starlette.routing import Mount
from asgi_adminstats import AdminStats, Settings

logging.basicConfig(level=logging.INFO)
stats = AdminStats(Settings.from_env())
app = Starlette(routes=[Mount("/admin/ws", app=stats)], lifespan=stats.lifespan)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_a_lifespan_started_component_closes_with_1001_before_uvicorn(
    tmp_path: Path, sig: signal.Signals
) -> None:
    async with host_process(tmp_path, _HOST_APP, ready="/admin/ws/health") as host:
        async with client(f"ws://127.0.0.1:{host.port}/admin/ws", tok=token()) as ws:
            assert (await recv(ws))["type"] == "connected"
            host.proc.send_signal(sig)
            code, reason = await closed(ws, timeout=10)
        assert (code, reason) == (1001, "going away")  # not uvicorn's own 1012
        await asyncio.wait_for(host.proc.wait(), 15)
        log = await host.log()
    assert "Traceback" not in log, log
    assert "code=1001" in log, log
    assert "Application shutdown complete" in log, log  # the lifespan's shutdown still ran


@contextlib.contextmanager
def _server_handler(sig: signal.Signals) -> Iterator[list[str]]:
    """A recording handler in the server's place; pytest's own is put back after."""
    heard: list[str] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        heard.append("server")

    previous = signal.signal(sig, handler)
    try:
        yield heard
    finally:
        signal.signal(sig, previous)


async def _until(check: Callable[[], Any]) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


async def test_the_action_runs_before_the_servers_handler_which_gets_the_signal_after() -> None:
    with _server_handler(signal.SIGTERM) as heard:
        server_handler = signal.getsignal(signal.SIGTERM)

        async def action(why: str) -> None:
            await asyncio.sleep(0.05)  # the server must not hear the signal meanwhile
            heard.append(f"action: {why}")

        hook = ExitSignals(action)
        hook.install()
        assert signal.getsignal(signal.SIGTERM) != server_handler
        signal.raise_signal(signal.SIGTERM)
        await _until(lambda: "server" in heard)
        assert heard == ["action: signal SIGTERM", "server"]
        assert signal.getsignal(signal.SIGTERM) == server_handler  # put back
        assert not hook.installed


async def test_a_second_signal_goes_to_the_server_at_once() -> None:
    with _server_handler(signal.SIGINT) as heard:
        release = asyncio.Event()

        async def action(why: str) -> None:
            await release.wait()  # a stop that hangs

        hook = ExitSignals(action)
        hook.install()
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(0.05)
        assert heard == []  # held back while the action runs
        signal.raise_signal(signal.SIGINT)  # the impatient second Ctrl-C
        assert heard == ["server"]
        release.set()
        await _until(lambda: len(heard) == 2)  # the first one, passed on after the action


async def test_remove_puts_the_servers_handler_back_unless_replaced_since() -> None:
    with _server_handler(signal.SIGTERM):
        server_handler = signal.getsignal(signal.SIGTERM)

        async def action(why: str) -> None:
            pass

        hook = ExitSignals(action)
        hook.install()
        hook.remove()
        assert signal.getsignal(signal.SIGTERM) == server_handler
        hook.install()

        def other(signum: int, frame: FrameType | None) -> None:
            pass

        signal.signal(signal.SIGTERM, other)  # someone else's, installed after ours
        hook.remove()
        assert signal.getsignal(signal.SIGTERM) == other
