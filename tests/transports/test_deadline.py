"""``Deadline`` behaves as ``asyncio.timeout`` where the server uses it: an await that outlives
it ends in ``TimeoutError`` with the task's cancellation taken back, one that finishes in time
is untouched, and a cancellation from outside is not turned into a timeout."""

from __future__ import annotations

import asyncio

import pytest

from edgerelay.transports.deadline import Deadline


def test_an_await_past_the_deadline_raises_timeout_and_the_task_is_not_left_cancelled():
    async def main():
        never = asyncio.get_running_loop().create_future()
        deadline = Deadline(0)
        with pytest.raises(TimeoutError), deadline:
            await never
        task = asyncio.current_task()
        assert deadline.expired and task.cancelling() == 0
        await asyncio.sleep(0)  # the task goes on: nothing cancels it later
        return "went on"

    assert asyncio.run(main()) == "went on"


def test_an_await_that_finishes_in_time_is_untouched_and_its_timer_cancelled():
    async def main():
        loop = asyncio.get_running_loop()
        ready = loop.create_future()
        ready.set_result("answer")
        deadline = Deadline(60)
        with deadline:
            result = await ready
        assert deadline._handle is None  # the timer was cancelled on the way out
        return result, deadline.expired

    assert asyncio.run(main()) == ("answer", False)


def test_no_seconds_is_no_deadline():
    async def main():
        deadline = Deadline(None)
        with deadline:
            await asyncio.sleep(0)
        return deadline._handle, deadline.expired

    assert asyncio.run(main()) == (None, False)


def test_a_cancellation_from_outside_stays_a_cancellation():
    async def waits(started: asyncio.Event):
        with Deadline(60):
            started.set()
            await asyncio.get_running_loop().create_future()

    async def main():
        started = asyncio.Event()
        task = asyncio.ensure_future(waits(started))
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main()) is True


def test_outside_and_deadline_cancellations_together_stay_a_cancellation():
    # As asyncio.timeout: when someone else cancelled too, the CancelledError goes on.
    async def waits():
        deadline = Deadline(60)
        with deadline:
            deadline._expire()  # the deadline passes...
            asyncio.current_task().cancel()  # ...and someone else cancels the task too
            await asyncio.get_running_loop().create_future()

    async def main():
        task = asyncio.ensure_future(waits())
        with pytest.raises(asyncio.CancelledError):
            await task
        return task.cancelled()

    assert asyncio.run(main()) is True


def test_used_outside_a_task_it_says_so():
    async def main():
        loop = asyncio.get_running_loop()
        said = loop.create_future()

        def callback():  # runs in the loop, but in no task
            try:
                Deadline(1).__enter__()
            except RuntimeError as error:
                said.set_result(str(error))

        loop.call_soon(callback)
        return await said

    assert asyncio.run(main()) == "Deadline is used inside a task"
