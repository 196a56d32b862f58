"""A request body forwarded as it arrives (the passthrough routes' uploads), counted against
EDGERELAY_MAX_BODY_BYTES on the way: nothing is held back, and an upload past the limit, or one
the client abandons, aborts the upstream request instead of reaching it cut short."""

from __future__ import annotations

from collections.abc import AsyncIterator

from edgerelay.core.fetch import FetchError
from edgerelay.transports.deadline import Deadline


class UploadAborted(FetchError):
    """Raised into the transport's upload, which then fails the upstream request. A FetchError,
    so core answers as for any failed upstream call; the adapter then says why (413, or
    nothing to a client that left)."""


class Upload:
    __slots__ = (
        "_idle",
        "_limit",
        "_receive",
        "finished",
        "gone",
        "size",
        "stalled",
        "started",
        "too_large",
    )

    def __init__(self, receive, limit: int, idle_timeout: float) -> None:
        self._receive = receive
        self._limit = limit
        self._idle = idle_timeout
        self.size = 0
        self.started = False
        self.finished = False  # read to its end, or aborted: receive() is free again
        self.too_large = False
        self.gone = False
        self.stalled = False  # nothing arrived for idle_timeout seconds

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._chunks()

    async def _chunks(self) -> AsyncIterator[bytes]:
        self.started = True
        try:
            while True:
                try:
                    with Deadline(self._idle):
                        message = await self._receive()
                except TimeoutError:
                    self.stalled = True
                    raise UploadAborted("the upload stalled") from None
                if message["type"] == "http.disconnect":
                    self.gone = True
                    raise UploadAborted("the client left during the upload")
                chunk = message.get("body", b"")
                if chunk:
                    self.size += len(chunk)
                    if self.size > self._limit:
                        self.too_large = True
                        raise UploadAborted("the upload is larger than the limit")
                    yield chunk
                if not message.get("more_body", False):
                    return
        finally:
            self.finished = True
