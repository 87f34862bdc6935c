"""The session's writes: straight from the fan-out while nothing is being written,
queued in order behind a write that waits for the socket, drained by a task that
exists only while there is something to drain.

A stand-in WebSocket makes a send wait on cue (a real server does so only when the
kernel's and the transport's buffers are full: bench/stalled_reader.py covers that).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from asgi_adminstats.auth import TokenVerifier
from asgi_adminstats.delivery import Close, Hub
from asgi_adminstats.session import Session
from asgi_adminstats.telemetry import Tally

from support.loopback import make_settings


class StandIn:
    """Records sent frames; ``room`` cleared makes the next send wait for it."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.room = asyncio.Event()
        self.room.set()
        self.error: Exception | None = None
        self.left = asyncio.Event()  # set: the client "leaves" (receive returns)

    async def send(self, message: dict[str, str]) -> None:
        if self.error is not None:
            raise self.error
        await self.room.wait()
        self.frames.append(message["text"])

    async def receive(self) -> dict[str, Any]:
        await self.left.wait()
        return {"type": "websocket.disconnect", "code": 1000}


def session_on(ws: StandIn, tmp_path: Path, tally: Tally | None = None) -> Session:
    settings = make_settings(tmp_path)
    return Session(
        ws,  # type: ignore[arg-type]
        settings=settings,
        verifier=TokenVerifier(settings),
        hub=Hub(),
        client_ip="127.0.0.1",
        tally=tally or Tally(),
    )


async def serving(tmp_path: Path) -> tuple[Session, StandIn, Tally, Any]:
    ws = StandIn()
    tally = Tally()
    session = session_on(ws, tmp_path, tally)
    task = asyncio.create_task(session._serve())
    await asyncio.sleep(0)
    return session, ws, tally, task


async def settle(ws: StandIn, count: int) -> None:
    for _ in range(200):
        if len(ws.frames) >= count:
            return
        await asyncio.sleep(0.001)


async def test_frames_go_out_at_once_with_no_task(tmp_path: Path) -> None:
    s, ws, tally, task = await serving(tmp_path)
    s.outbox.put_stats("s1")
    assert ws.frames == ["s1"], "written in the caller, no task switch"
    s.outbox.put_notification("n1")
    assert ws.frames == ["s1", "n1"]
    assert s._writing is None, "an idle session has no writing task"
    assert tally.sent["stats"] == 1 and tally.sent["audit_action"] == 1
    assert tally.sent_bytes["stats"] == 2
    ws.left.set()
    assert await asyncio.wait_for(task, 1) is None


async def test_frames_queue_in_order_behind_a_waiting_write(tmp_path: Path) -> None:
    s, ws, _, task = await serving(tmp_path)
    ws.room.clear()
    s.outbox.put_notification("n1")  # taken, but waits for room
    for name in ("n2", "n3"):
        s.outbox.put_notification(name)
    s.outbox.put_stats("s1")
    s.outbox.put_stats("s2")  # replaces s1: it never left the outbox
    await asyncio.sleep(0.01)
    assert ws.frames == [] and s._writing is not None
    ws.room.set()
    await settle(ws, 4)
    assert ws.frames == ["n1", "n2", "n3", "s2"]
    await asyncio.sleep(0.01)
    assert s._writing is None, "the drain ends with the queue"
    s.outbox.put_stats("s3")  # idle again: straight out
    assert ws.frames[-1] == "s3"
    ws.left.set()
    await asyncio.wait_for(task, 1)


async def test_frames_queued_before_serving_go_out_first(tmp_path: Path) -> None:
    ws = StandIn()
    s = session_on(ws, tmp_path)
    s.outbox.put_stats("s0")  # what Hub.add does right after `connected`
    task = asyncio.create_task(s._serve())
    await settle(ws, 1)
    assert ws.frames == ["s0"]
    ws.left.set()
    await asyncio.wait_for(task, 1)


async def test_a_close_request_ends_a_session_whose_write_is_stuck(tmp_path: Path) -> None:
    s, ws, _, task = await serving(tmp_path)
    ws.room.clear()
    s.outbox.put_stats("s1")  # taken; its send never finds room
    for i in range(s._settings.notification_queue + 1):
        s.outbox.put_notification(f"n{i}")
    assert await asyncio.wait_for(task, 1) == Close(4008, "slow consumer")
    assert ws.frames == []


async def test_a_failing_send_closes_only_its_session(tmp_path: Path) -> None:
    s, ws, _, task = await serving(tmp_path)
    ws.error = RuntimeError("server bug")
    s.outbox.put_stats("s1")  # must not raise into the fan-out
    assert await asyncio.wait_for(task, 1) == Close(1011, "internal error")


async def test_a_client_gone_mid_write_is_not_an_error(tmp_path: Path) -> None:
    s, ws, _, task = await serving(tmp_path)
    ws.error = OSError("connection lost")
    s.outbox.put_stats("s1")
    await asyncio.sleep(0.01)
    assert not task.done(), "the reader, not the writer, ends a session whose client left"
    ws.left.set()
    assert await asyncio.wait_for(task, 1) is None
