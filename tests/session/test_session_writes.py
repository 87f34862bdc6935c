"""A served session's writes, through a stand-in ``Transport``: frames go out from the
caller once `connected` is sent, what queued before goes out first, and a write that
waits, fails, or finds the client gone ends the session as it should (or not at all).

The writer's own scheduling is in test_writer.py; a real server's socket that stops
taking frames is in bench/stalled_reader.py.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from starlette.types import Message, Scope

from asgi_adminstats.auth import TokenVerifier
from asgi_adminstats.delivery import Hub
from asgi_adminstats.session import Session
from asgi_adminstats.telemetry import Tally

from support.loopback import make_settings, token

QUEUE = 8  # notification_queue: a small one to overflow


class StandIn:
    """A client with a good token in its handshake; records frames and closes.
    ``room`` cleared makes the next frame wait for it; ``left`` set: the client leaves."""

    def __init__(self) -> None:
        self.scope: Scope = {
            "type": "websocket",
            "headers": [(b"authorization", f"Bearer {token()}".encode())],
        }
        self.first: list[str] = []
        self.frames: list[str] = []
        self.closes: list[tuple[int, str]] = []
        self.room = asyncio.Event()
        self.room.set()
        self.error: Exception | None = None
        self.left = asyncio.Event()

    async def accept(self, subprotocol: str | None) -> None:
        pass

    async def receive(self) -> Message:
        await self.left.wait()
        return {"type": "websocket.disconnect", "code": 1000}

    async def send_first(self, text: str) -> None:
        self.first.append(text)

    async def send_text(self, text: str) -> None:
        if self.error is not None:
            raise self.error
        await self.room.wait()
        self.frames.append(text)

    async def close(self, code: int, reason: str) -> None:
        self.closes.append((code, reason))


async def no_replay(after: int, limit: int) -> list[dict[str, Any]]:
    return []


async def serving(
    tmp_path: Path, hub: Hub | None = None
) -> tuple[Session, StandIn, Tally, asyncio.Task[None]]:
    """A session past its handshake, served (its `connected` sent, its writer started)."""
    settings = make_settings(tmp_path, notification_queue=QUEUE)
    hub = Hub() if hub is None else hub  # an empty Hub is falsy
    transport = StandIn()
    tally = Tally()
    session = Session(
        transport,
        settings=settings,
        verifier=TokenVerifier(settings),
        hub=hub,
        client_ip="127.0.0.1",
        tally=tally,
        replay=no_replay,
    )
    served = len(hub) + 1
    task = asyncio.create_task(session.run())
    for _ in range(500):
        if len(hub) == served or task.done():
            break
        await asyncio.sleep(0.001)
    assert len(hub) == served, "the session is served"
    assert [json.loads(text)["type"] for text in transport.first] == ["connected"]
    return session, transport, tally, task


async def settle(transport: StandIn, count: int) -> None:
    for _ in range(200):
        if len(transport.frames) >= count:
            return
        await asyncio.sleep(0.001)


async def test_frames_go_out_at_once_and_a_client_leaving_ends_the_session(
    tmp_path: Path,
) -> None:
    s, transport, tally, task = await serving(tmp_path)
    s.outbox.put_stats("s1")
    assert transport.frames == ["s1"], "written in the caller, no task switch"
    s.outbox.put_notification("n1")
    assert transport.frames == ["s1", "n1"]
    assert tally.sent["control"] == 1, "`connected`"
    assert tally.sent["stats"] == 1 and tally.sent["audit_action"] == 1
    transport.left.set()
    await asyncio.wait_for(task, 1)
    assert transport.closes == [] and not tally.closes, "no close frame to a client that left"


async def test_frames_queued_before_serving_go_out_first(tmp_path: Path) -> None:
    hub = Hub()
    hub.publish_stats("s0")  # Hub.add gives it right after `connected`
    _, transport, _, task = await serving(tmp_path, hub)
    await settle(transport, 1)
    assert transport.frames == ["s0"]
    transport.left.set()
    await asyncio.wait_for(task, 1)


async def test_a_close_request_ends_a_session_whose_write_is_stuck(tmp_path: Path) -> None:
    s, transport, tally, task = await serving(tmp_path)
    transport.room.clear()
    s.outbox.put_stats("s1")  # taken; its send never finds room
    for i in range(QUEUE + 1):
        s.outbox.put_notification(f"n{i}")
    await asyncio.wait_for(task, 1)
    assert transport.closes == [(4008, "slow consumer")]
    assert transport.frames == []
    assert tally.closes == {4008: 1}


async def test_a_failing_send_closes_only_its_session(tmp_path: Path) -> None:
    hub = Hub()
    _, transport, _, task = await serving(tmp_path, hub)
    _, healthy, _, other_task = await serving(tmp_path, hub)
    transport.error = RuntimeError("server bug")
    hub.publish_stats("s1")  # must not raise into the fan-out, nor stop it
    await asyncio.wait_for(task, 1)
    assert transport.closes == [(1011, "internal error")]
    assert healthy.frames == ["s1"] and not other_task.done()
    healthy.left.set()
    await asyncio.wait_for(other_task, 1)


async def test_a_client_gone_mid_write_is_not_an_error(tmp_path: Path) -> None:
    s, transport, _, task = await serving(tmp_path)
    transport.error = OSError("connection lost")
    s.outbox.put_stats("s1")
    await asyncio.sleep(0.01)
    assert not task.done(), "the reader, not the writer, ends a session whose client left"
    transport.left.set()
    await asyncio.wait_for(task, 1)
    assert transport.closes == []
