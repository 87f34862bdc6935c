"""Interruptible: a read in the caller's task, stopped from elsewhere, and the server's
own cancellation of that task never mistaken for ours."""

from __future__ import annotations

import asyncio

import pytest

from asgi_adminstats.session._interrupt import Interrupted, Interruptible


async def test_interrupt_stops_the_read_and_the_task_goes_on() -> None:
    reading = Interruptible()
    started = asyncio.Event()

    async def read() -> str:
        started.set()
        await asyncio.Event().wait()  # a client that never sends
        return "never"

    async def session() -> str:
        try:
            return await reading.run(read())
        except Interrupted:
            await asyncio.sleep(0)  # the task is not cancelled any more: it can await
            return "interrupted"

    task = asyncio.create_task(session())
    await asyncio.wait_for(started.wait(), 1)
    reading.interrupt()
    reading.interrupt()  # twice: one cancellation only
    assert await asyncio.wait_for(task, 1) == "interrupted"
    assert task.cancelling() == 0


async def test_the_servers_cancellation_stays_a_cancellation() -> None:
    reading = Interruptible()
    started = asyncio.Event()

    async def read() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(reading.run(read()))
    await asyncio.wait_for(started.wait(), 1)
    reading.interrupt()
    task.cancel()  # the server's, in the same turn
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 1)


async def test_an_interrupt_from_within_the_read_cancels_nothing() -> None:
    reading = Interruptible()

    async def read() -> str:
        reading.interrupt()  # e.g. a reply that overflowed the outbox
        await asyncio.sleep(0)
        return "read"

    assert await reading.run(read()) == "read"
    assert await reading.run(read()) == "read"  # and the next read runs too


async def test_no_read_in_progress_nothing_to_interrupt() -> None:
    reading = Interruptible()
    reading.interrupt()

    async def read() -> int:
        await asyncio.sleep(0)
        return 7

    assert await reading.run(read()) == 7
