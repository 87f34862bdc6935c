"""The session's writes: straight from the fan-out when the writer is idle, queued in
order behind a write that waits for the socket.

A stand-in WebSocket makes a send wait on cue (a real server does so only when the
kernel's and the transport's buffers are full: see bench/stalled_reader.py for that).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from asgi_adminstats.auth import TokenVerifier
from asgi_adminstats.hub import Hub
from asgi_adminstats.metrics import Tally
from asgi_adminstats.outbox import Close
from asgi_adminstats.session import Session

from conftest import make_settings


class StandIn:
    """Records sent frames; ``room`` cleared makes the next send wait for it."""

    def __init__(self) -> None:
        self.frames: list[str] = []
        self.room = asyncio.Event()
        self.room.set()
        self.sends = 0
        self.error: Exception | None = None

    async def send(self, message: dict[str, str]) -> None:
        self.sends += 1
        if self.error is not None:
            raise self.error
        await self.room.wait()
        self.frames.append(message["text"])


def session(tmp_path: Path) -> tuple[Session, StandIn, Tally]:
    settings = make_settings(tmp_path)
    ws = StandIn()
    tally = Tally()
    made = Session(
        ws,  # type: ignore[arg-type]
        settings=settings,
        verifier=TokenVerifier(settings),
        hub=Hub(),
        client_ip="127.0.0.1",
        tally=tally,
    )
    return made, ws, tally


async def test_an_idle_writer_lets_frames_out_at_once(tmp_path: Path) -> None:
    s, ws, tally = session(tmp_path)
    writer = asyncio.create_task(s._write())
    await asyncio.sleep(0)  # the writer parks
    s.outbox.put_stats("s1")
    assert ws.frames == ["s1"], "written in the caller, no task switch"
    s.outbox.put_notification("n1")
    assert ws.frames == ["s1", "n1"]
    assert tally.sent["stats"] == 1 and tally.sent["audit_action"] == 1
    assert tally.sent_bytes["stats"] == 2
    writer.cancel()


async def test_frames_queue_in_order_behind_a_waiting_write(tmp_path: Path) -> None:
    s, ws, _ = session(tmp_path)
    writer = asyncio.create_task(s._write())
    await asyncio.sleep(0)
    ws.room.clear()
    s.outbox.put_notification("n1")  # taken, but waits for room
    for name in ("n2", "n3"):
        s.outbox.put_notification(name)
    s.outbox.put_stats("s1")
    s.outbox.put_stats("s2")  # replaces s1: it never left the outbox
    await asyncio.sleep(0.01)
    assert ws.frames == []
    ws.room.set()
    for _ in range(100):
        if len(ws.frames) == 4:
            break
        await asyncio.sleep(0.001)
    assert ws.frames == ["n1", "n2", "n3", "s2"]
    # Idle again: the next frame goes straight out.
    s.outbox.put_stats("s3")
    assert ws.frames[-1] == "s3"
    writer.cancel()


async def test_a_close_request_waits_for_nothing_queued(tmp_path: Path) -> None:
    s, ws, _ = session(tmp_path)
    writer = asyncio.create_task(s._write())
    await asyncio.sleep(0)
    ws.room.clear()
    s.outbox.put_stats("s1")
    s.outbox.close(Close(4008, "slow consumer"))
    s.outbox.put_notification("n1")  # after a close request nothing is taken directly
    ws.room.set()
    assert await asyncio.wait_for(writer, 1) == Close(4008, "slow consumer")
    assert ws.frames == ["s1"]


async def test_a_failing_send_closes_only_its_session(tmp_path: Path) -> None:
    s, ws, _ = session(tmp_path)

    ws.error = RuntimeError("server bug")
    writer = asyncio.create_task(s._write())
    await asyncio.sleep(0)
    s.outbox.put_stats("s1")  # must not raise into the fan-out
    assert await asyncio.wait_for(writer, 1) == Close(1011, "internal error")


async def test_a_client_gone_mid_write_is_not_an_error(tmp_path: Path) -> None:
    s, ws, _ = session(tmp_path)

    ws.error = OSError("connection lost")
    writer = asyncio.create_task(s._write())
    await asyncio.sleep(0)
    s.outbox.put_stats("s1")
    await asyncio.sleep(0.01)
    assert not writer.done(), "the reader, not the writer, ends a session whose client left"
    writer.cancel()


async def test_a_close_request_ends_a_session_whose_write_is_stuck(tmp_path: Path) -> None:
    s, ws, _ = session(tmp_path)
    writer = asyncio.create_task(s._write())
    requested = asyncio.create_task(s.outbox.requested())
    await asyncio.sleep(0)
    ws.room.clear()
    s.outbox.put_stats("s1")  # taken; its send never finds room
    for i in range(s._settings.notification_queue + 1):
        s.outbox.put_notification(f"n{i}")
    assert await asyncio.wait_for(requested, 1) == Close(4008, "slow consumer")
    assert not writer.done(), "the writer is still stuck: the session must not wait for it"
    writer.cancel()
