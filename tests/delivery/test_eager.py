"""start_eagerly: a coroutine runs in the caller until it must wait, then in a task."""

from __future__ import annotations

import asyncio

import pytest

from asgi_adminstats.delivery import start_eagerly


async def test_a_coroutine_that_never_waits_finishes_in_the_caller() -> None:
    steps: list[str] = []

    async def work() -> None:
        steps.append("ran")

    assert start_eagerly(work()) is None
    assert steps == ["ran"]


async def test_a_coroutine_that_waits_is_finished_by_a_task() -> None:
    gate = asyncio.Event()
    steps: list[str] = []

    async def work() -> None:
        steps.append("before")
        await gate.wait()
        steps.append("after")

    task = start_eagerly(work())
    assert task is not None and steps == ["before"]
    await asyncio.sleep(0.01)
    assert not task.done()
    gate.set()
    await asyncio.wait_for(task, 1)
    assert steps == ["before", "after"]


async def test_bare_yields_and_several_waits_are_followed() -> None:
    steps: list[int] = []

    async def work() -> None:
        for i in range(3):
            await asyncio.sleep(0)
            steps.append(i)
            await asyncio.sleep(0.001)

    task = start_eagerly(work())
    assert task is not None
    await asyncio.wait_for(task, 1)
    assert steps == [0, 1, 2]


async def test_an_early_exception_reaches_the_caller() -> None:
    async def work() -> None:
        raise OSError("gone")

    with pytest.raises(OSError, match="gone"):
        start_eagerly(work())


async def test_a_late_exception_fails_the_task_and_results_flow_back() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[int] = loop.create_future()
    got: list[int] = []

    async def work() -> None:
        got.append(await future)
        raise ValueError("after the wait")

    task = start_eagerly(work())
    assert task is not None
    future.set_result(7)
    with pytest.raises(ValueError, match="after the wait"):
        await asyncio.wait_for(task, 1)
    assert got == [7]


async def test_an_awaited_exception_is_raised_inside_the_coroutine() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    caught: list[str] = []

    async def work() -> None:
        try:
            await future
        except ConnectionError as exc:
            caught.append(str(exc))

    task = start_eagerly(work())
    assert task is not None
    future.set_exception(ConnectionError("reset"))
    await asyncio.wait_for(task, 1)
    assert caught == ["reset"]


async def test_cancelling_the_task_closes_the_coroutine() -> None:
    gate = asyncio.Event()
    cleaned: list[bool] = []

    async def work() -> None:
        try:
            await gate.wait()
        finally:
            cleaned.append(True)

    task = start_eagerly(work())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == [True]
    assert not gate._waiters  # the Event forgot the abandoned waiter


async def test_cancelling_cancels_the_awaited_future_as_a_task_would() -> None:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[None] = loop.create_future()
    seen: list[str] = []

    async def work() -> None:
        try:
            await future
        except asyncio.CancelledError:
            seen.append("cancelled inside")
            raise

    task = start_eagerly(work())
    assert task is not None
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert future.cancelled()
    assert seen == ["cancelled inside"]


async def test_any_awaitable_is_accepted() -> None:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[None] = loop.create_future()
    done.set_result(None)
    assert start_eagerly(done) is None
    later: asyncio.Future[None] = loop.create_future()
    task = start_eagerly(later)
    assert task is not None and not task.done()
    later.set_result(None)
    await asyncio.wait_for(task, 1)
