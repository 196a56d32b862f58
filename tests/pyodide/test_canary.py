"""Harness self-check: this test MUST fail, after really awaiting.

Without JSPI a coroutine can be scheduled and never awaited, and the test then
"passes". run.mjs requires this test's outcome to be an AssertionError carrying
the sentinel below, raised only after a WebLoop turn, a timer and a JS promise
have all been awaited; anything else fails the whole run.
"""

import asyncio

import js
from async_runner import expect_failure, timeout

SENTINEL = "EDGERELAY-CANARY"  # run.mjs looks for this exact text


@timeout(5)
@expect_failure("harness self-check; must be reported failed")
async def test_canary_must_fail():
    await asyncio.sleep(0)
    assert await js.Promise.resolve(1) == 1  # a wrong value fails without the sentinel
    await asyncio.sleep(0.01)  # a real setTimeout round trip
    reached_end = True
    assert not reached_end, f"{SENTINEL}: reached the end after real awaits (expected)"
