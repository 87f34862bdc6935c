"""A connection's writer: frames straight from the caller while nothing is being
written, queued in order behind a write that waits for the socket, drained by a task
that exists only while there is something to drain.

A stand-in (helpers.sinks) makes a write wait on cue.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from asgi_adminstats.delivery import Close, Writer
from asgi_adminstats.telemetry import Tally

from helpers.sinks import Sink, settle


def writer_on(sink: Sink, tally: Tally | None = None) -> Writer:
    return Writer(sink, 100, tally=tally or Tally(), name="s-1", gone=(OSError,))


async def idle(writer: Writer) -> None:
    for _ in range(200):
        if writer.writing is None:
            return
        await asyncio.sleep(0.001)


async def test_frames_go_out_at_once_with_no_task() -> None:
    sink, tally = Sink(), Tally()
    writer = writer_on(sink, tally)
    writer.start()
    writer.outbox.put_stats("s1")
    assert sink.frames == ["s1"], "written in the caller, no task switch"
    writer.outbox.put_notification("n1")
    writer.outbox.put_notification("é")
    assert sink.frames == ["s1", "n1", "é"]
    assert writer.writing is None, "an idle writer has no task"
    assert tally.sent["stats"] == 1 and tally.sent["audit_action"] == 2
    assert tally.sent_bytes["stats"] == 2
    assert tally.sent_bytes["audit_action"] == 2 + len("é".encode()), "bytes, not characters"


async def test_frames_queue_in_order_behind_a_waiting_write() -> None:
    sink = Sink()
    writer = writer_on(sink)
    writer.start()
    sink.room.clear()
    writer.outbox.put_notification("n1")  # taken, but waits for room
    for name in ("n2", "n3"):
        writer.outbox.put_notification(name)
    writer.outbox.put_stats("s1")
    writer.outbox.put_stats("s2")  # replaces s1: it never left the outbox
    await asyncio.sleep(0.01)
    assert sink.frames == [] and writer.writing is not None
    sink.room.set()
    await settle(sink, 4)
    assert sink.frames == ["n1", "n2", "n3", "s2"]
    await idle(writer)
    assert writer.writing is None, "the drain ends with the queue"
    writer.outbox.put_stats("s3")  # idle again: straight out
    assert sink.frames[-1] == "s3"


async def test_frames_only_queue_until_started_then_go_out_first() -> None:
    sink = Sink()
    writer = writer_on(sink)
    writer.outbox.put_stats("s0")  # what Hub.add does right after `connected`
    writer.outbox.put_notification("n0")
    await asyncio.sleep(0.01)
    assert sink.frames == [] and writer.writing is None
    writer.start()
    assert writer.writing is not None, "start() drains what queued"
    writer.outbox.put_notification("n1")  # behind the queued frames, not ahead of them
    await settle(sink, 3)
    assert sink.frames == ["n0", "n1", "s0"]


async def test_stop_cancels_a_waiting_write_and_frames_only_queue_after() -> None:
    sink = Sink()
    writer = writer_on(sink)
    writer.start()
    sink.room.clear()
    writer.outbox.put_stats("s1")
    writing = writer.writing
    assert writing is not None
    assert writer.stop() is writing
    await asyncio.wait([writing], timeout=1)
    assert writing.cancelled() and writer.writing is None
    sink.room.set()
    writer.outbox.put_notification("n1")
    await asyncio.sleep(0.01)
    assert sink.frames == [] and writer.writing is None
    assert writer.outbox.has_frames()


@pytest.mark.parametrize("late", [False, True], ids=["at-once", "after-waiting"])
async def test_a_failing_write_closes_its_outbox_1011_and_logs(
    late: bool, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink()
    writer = writer_on(sink)
    writer.start()
    failure = RuntimeError("server bug")
    if late:
        sink.room.clear()
        sink.late_error = failure
    else:
        sink.error = failure
    with caplog.at_level(logging.ERROR, "asgi_adminstats.session"):
        writer.outbox.put_stats("s1")  # must not raise into the fan-out
        sink.room.set()
        close = await asyncio.wait_for(writer.outbox.closing(), 1)
    assert close == Close(1011, "internal error")
    [record] = caplog.records
    assert (record.name, record.levelno) == ("asgi_adminstats.session", logging.ERROR)
    assert record.getMessage() == "session s-1: a write failed"
    assert record.exc_info is not None and record.exc_info[1] is failure


@pytest.mark.parametrize("late", [False, True], ids=["at-once", "after-waiting"])
async def test_a_client_gone_mid_write_is_not_an_error(
    late: bool, caplog: pytest.LogCaptureFixture
) -> None:
    sink = Sink()
    writer = writer_on(sink)
    writer.start()
    if late:
        sink.room.clear()
        sink.late_error = OSError("connection lost")
    else:
        sink.error = OSError("connection lost")
    with caplog.at_level(logging.DEBUG, "asgi_adminstats.session"):
        writer.outbox.put_stats("s1")
        sink.room.set()
        await idle(writer)
        await asyncio.sleep(0.01)
    closing = writer.outbox.closing()
    assert not closing.done(), "the reader, not the writer, ends a session whose client left"
    assert caplog.records == []
