"""Run a coroutine to completion without an event loop.

Core's async code only awaits the injected Fetch; with a fake Fetch nothing ever really
suspends, so stepping the coroutine by hand finishes it. This works the same on CPython and on
Pyodide without JSPI (where ``asyncio.run`` would return before the coroutine ran). A coroutine
that does wait on real I/O is an error here, never a silent pass.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine
from typing import Any


def drive(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        while True:
            yielded = coro.send(None)
            coro.close()
            raise RuntimeError(f"coroutine waited on real I/O ({yielded!r}); use a fake")
    except StopIteration as stop:
        return stop.value


def collect(stream: AsyncIterator[bytes]) -> list[bytes]:
    async def gather() -> list[bytes]:
        return [chunk async for chunk in stream]

    return drive(gather())
