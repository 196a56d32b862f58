"""Core's view of an inbound HTTP request and of the response it decides on.

Adapters (ASGI, Worker, Lambda) translate their platform's request into ``Request`` and write
``Response`` back. A response body is exactly one of: ``body`` bytes, or ``stream`` (an async
iterator of bytes). When ``upstream`` is set, ``stream`` is that upstream body unchanged (an
event stream through its observer, which only cuts it on event boundaries and adds an error
event if it breaks): an adapter that can forward ``upstream.native_body`` without touching it
(a Worker) may do so while nothing watches the observer (``observer.watched``).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from .errors import GatewayError
from .fetch import Upstream
from .observer import StreamObserver

if TYPE_CHECKING:
    from .identity.authenticate import Identity
    from .requestlog import RequestLog


class Request:
    """An inbound request as core sees it; adapters build it from their platform's request."""

    __slots__ = (
        "body",
        "body_stream",
        "client_ip",
        "headers",
        "identity",
        "log",
        "method",
        "path",
        "query",
    )

    def __init__(
        self,
        method: str,
        path: str,
        query: str = "",
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
        client_ip: str | None = None,
        body_stream: AsyncIterable[bytes] | None = None,
    ) -> None:
        self.method = method
        self.path = path  # raw path as received, still percent-encoded
        self.query = query  # raw query string without the "?"
        self.headers = {} if headers is None else headers  # lower-case names
        self.body = body
        self.client_ip = client_ip
        # The upload still arriving, for routes that forward it as it comes
        # (``Gateway.streams_upload``); ``body`` is then empty.
        self.body_stream = body_stream
        # Who is calling (``core.identity.Identity``), set by the gateway once checked.
        self.identity: Identity | None = None
        self.log: RequestLog | None = None  # the request's log record, set by the gateway

    def __repr__(self) -> str:  # never the headers or body: they may hold secrets
        return f"Request({self.method} {self.path})"


class Response:
    """What the gateway answers: status, headers, and ``body`` bytes or a ``stream``.

    An event stream carries its ``observer`` (``core.observer``): it cut the stream on event
    boundaries and can still end it with the route's terminal error event (``end_with``)."""

    __slots__ = (
        "body",
        "failure",
        "headers",
        "log",
        "observer",
        "on_close",
        "status",
        "stream",
        "upstream",
    )

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        stream: AsyncIterator[bytes] | None = None,
        upstream: Upstream | None = None,
    ) -> None:
        self.status = status
        self.headers = headers
        self.body = body
        self.stream = stream
        self.upstream = upstream
        # Set when a translated stream had to end early (the upstream broke off): the client
        # got an error frame in-band; adapters that can also flag it out of band (Lambda's
        # error trailers) read it here once the stream is done.
        self.failure: Exception | None = None
        self.observer: StreamObserver | None = None
        # The request's log record: adapters add timing and bytes, then write its line.
        self.log: RequestLog | None = None
        # Work that waits for the answer to be over (limits' counters settled and stream slots
        # given back), awaited by ``aclose``: after the body went out, so it never delays it.
        self.on_close: tuple[Callable[[], Awaitable[None]], ...] = ()

    def __repr__(self) -> str:
        return f"Response({self.status})"

    def end_with(self, error: GatewayError) -> bytes:
        """End the body early (a limit was reached, or the stream raised): the bytes to send
        last, the route's terminal error event, or nothing when the body is not an event
        stream (an adapter can then only break the connection) or had already ended."""
        if self.observer is None:
            return b""
        out = self.observer.fail(error)
        if self.observer.failure is not None:
            self.failure = self.observer.failure
        return out

    async def aclose(self) -> None:
        """Stop producing the body: close the stream and abort the upstream read, if any; then
        run ``on_close``. Adapters call it once the answer is over, whatever its body."""
        stream, self.stream = self.stream, None
        try:
            if stream is not None and hasattr(stream, "aclose"):
                await stream.aclose()
            if self.upstream is not None:
                await self.upstream.aclose()
            if self.observer is not None:
                self.observer.close()
        finally:
            closers, self.on_close = self.on_close, ()
            for close in closers:
                await close()
