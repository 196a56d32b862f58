"""One upstream call per key per instance: identical requests that arrive while the first one's
answer is still coming wait for it instead of calling the upstream again.

A ``Flight`` owns that one upstream call. Every waiting client reads it through its own
``FlightReader``: first a replay of what has arrived so far, then each new batch as it comes
(not after the end), so a streaming UI renders progressively for every waiter. The call belongs
to the group: a client that leaves only stops its own reader, and the upstream call is
cancelled when the last reader has left. When the answer is complete the flight's ``on_end``
stores it (before the readers see the end, so the next identical request finds it).

This is the one part of the cache that needs an event loop (a task pumps the upstream, readers
wait on an event); ``asyncio`` is imported when the first flight starts.

``tick``: where a request must keep something of its own pending while it waits (workerd
cancels a request whose only pending work is an event another request will set: "The Workers
runtime canceled this request because it detected that your Worker's code had hung and would
never generate a response"), a reader waits with a timer of its own, re-armed every ``tick``
seconds until the event is set. The timer only keeps the request alive; nothing happens when it
fires.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

from ..errors import GatewayError
from ..fetch import SHARED_CALLS
from ..http import Response
from ..observer import Reason
from .record import Recording


class Flight:
    """``open_`` makes the upstream call (the gateway's chat completion, streamed); ``limit``
    bounds what the flight holds (EDGERELAY_MAX_RESPONSE_BYTES: past it the stream ends with
    the route's error event); ``on_end`` runs once the stream ended by itself (not when
    abandoned), before readers see the end."""

    def __init__(
        self,
        open_: Callable[[], Awaitable[Response]],
        *,
        limit: int,
        recording: Recording | None = None,
        on_end: Callable[[Flight], Awaitable[None]] | None = None,
        on_close: Callable[[Flight], None] | None = None,
        tick: float | None = None,
    ) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.response: Response | None = None  # once the upstream answered (its headers)
        self.error: GatewayError | None = None  # the call failed before any byte
        self.ended: Reason | None = None  # how the stream ended, once it did
        self.done = False
        self.readers = 0
        self.recording = recording
        self._open = open_
        self._limit = limit
        self._on_end = on_end
        self._on_close = on_close
        self._tick = tick
        self._task: Any = None
        self._changed: Any = None
        self._asyncio: Any = None

    @property
    def joinable(self) -> bool:
        """Whether a new identical request may still wait for this answer (it may not once the
        call failed or the answer grew past what the cache would keep)."""
        return self.error is None and self.recording is not None and not self.recording.over

    def start(self) -> None:
        """Start the upstream call (a task, so it lives as long as any reader wants it)."""
        import asyncio  # only once a cacheable request arrives: it is slow to import

        self._asyncio = asyncio
        self._changed = asyncio.Event()
        self._task = asyncio.ensure_future(self._pump())

    @property
    def task(self) -> Any:
        """The task that makes the upstream call and reads it (once started)."""
        return self._task

    def reader(self) -> FlightReader:
        """A new reader, counted from now on (so the call is not cancelled under it)."""
        return FlightReader(self)

    async def opened(self, reader: FlightReader) -> Response:
        """The upstream's response (for its status and headers), once it answered; raises the
        call's ``GatewayError`` (every waiter gets the same error), after leaving."""
        try:
            while self.response is None and self.error is None and not self.done:
                await self._wait()
        except BaseException:
            await reader.aclose()
            raise
        if self.response is None:
            await reader.aclose()
            raise self.error or GatewayError(502, "The upstream call ended without an answer.")
        return self.response

    def _leave(self) -> None:
        self.readers -= 1
        # Once the stream has ended by itself, the answer is being stored: let that finish.
        if self.readers == 0 and self.ended is None and not self.done and self._task is not None:
            self._task.cancel()  # the last waiter left: the upstream call goes too

    async def _wait(self) -> None:
        if self._tick is None:
            await self._changed.wait()
            return
        asyncio = self._asyncio
        waiter = asyncio.ensure_future(self._changed.wait())
        try:
            while not waiter.done():
                await asyncio.wait((waiter,), timeout=self._tick)  # a timer of this request's
        finally:
            waiter.cancel()

    def _notify(self) -> None:
        changed, self._changed = self._changed, self._asyncio.Event()
        changed.set()

    def _append(self, chunk: bytes) -> None:
        if not chunk:
            return
        self.chunks.append(chunk)
        self.size += len(chunk)
        if self.recording is not None:
            self.recording.feed(chunk)
        self._notify()

    async def _pump(self) -> None:
        SHARED_CALLS.set(True)  # this task's own copy: no one client's leaving aborts the call
        finished = False
        try:
            try:
                response = await self._open()
            except GatewayError as error:
                self.error = error
                return
            self.response = response
            self._notify()
            await self._relay(response)
            finished = True
        except Exception:  # a bug of ours: end every reader cleanly, keep the traceback in the log
            import logging

            logging.getLogger("edgerelay").exception("cache flight failed")
            if self.response is None:
                self.error = GatewayError(500, "Internal gateway error.")
            else:
                self._append(self.response.end_with(GatewayError(500, "Internal gateway error.")))
        finally:
            try:
                if finished and self._on_end is not None:
                    await self._on_end(self)
            finally:
                self.done = True
                if self._on_close is not None:
                    self._on_close(self)
                if self._changed is not None:
                    self._notify()

    async def _relay(self, response: Response) -> None:
        if response.stream is None:
            self._append(response.body)
            return
        try:
            async for chunk in response.stream:
                self._append(chunk)
                if self.size > self._limit:
                    error = GatewayError(
                        502,
                        f"The answer is larger than EDGERELAY_MAX_RESPONSE_BYTES ({self._limit}"
                        " bytes).",
                        code="response_too_large",
                    )
                    self._append(response.end_with(error))
                    break
        finally:
            await response.aclose()
        self.ended = response.observer.ended if response.observer is not None else None


class FlightReader:
    """One waiting client's view of a flight: every batch from the first, then live. Closing it
    (``aclose``, also when the client's task is cancelled while waiting) leaves the group."""

    __slots__ = ("_flight", "_left", "_position")

    def __init__(self, flight: Flight) -> None:
        self._flight = flight
        self._position = 0
        self._left = False
        flight.readers += 1

    def __aiter__(self) -> FlightReader:
        return self

    async def __anext__(self) -> bytes:
        flight = self._flight
        while not self._left:
            if self._position < len(flight.chunks):
                chunk = flight.chunks[self._position]
                self._position += 1
                return chunk
            if flight.done:
                break
            try:
                await flight._wait()
            except BaseException:
                await self.aclose()
                raise
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        if not self._left:
            self._left = True
            self._flight._leave()


class Rewriter(Protocol):
    """A filter over a stream's batches: ``feed`` what to send now, ``finish`` what is left."""

    def feed(self, batch: bytes) -> bytes: ...

    def finish(self) -> bytes: ...


class Rewritten:
    """A live stream (a flight's reader) through a ``Rewriter``: what asking for usage added
    taken out, or a client's own echoes put back. A class, not a generator: closing it before
    the first read must still leave the flight."""

    __slots__ = ("_done", "_rewriter", "_source")

    def __init__(self, source: AsyncIterator[bytes], rewriter: Rewriter) -> None:
        self._source = source
        self._rewriter = rewriter
        self._done = False

    def __aiter__(self) -> Rewritten:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            try:
                batch = await self._source.__anext__()
            except StopAsyncIteration:
                self._done = True
                out = self._rewriter.finish()
                if out:
                    return out
                break
            out = self._rewriter.feed(batch)
            if out:
                return out
        raise StopAsyncIteration

    async def aclose(self) -> None:
        await self._source.aclose()  # type: ignore[attr-defined]
