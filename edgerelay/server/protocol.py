"""uvicorn's httptools protocol with the two guards a public server needs and uvicorn lacks.

- A header deadline: a connection must finish each request's headers within
  ``header_timeout`` seconds of starting it (of connecting, for the first). uvicorn has no
  such timer, and its keep-alive timer restarts on every byte, so a client sending one header
  byte at a time (slowloris) held its connection, and a file descriptor, for as long as it
  liked. Past the deadline the connection is closed.
- A cap on open connections: past ``max_connections`` a new connection is answered 503 and
  closed at once, before it holds anything. (uvicorn's own ``limit_concurrency``, also set,
  answers 503 only once a request's headers are complete, which a slowloris never sends.)

Measured with ``make bench``: the timer costs one ``call_later`` and one ``cancel`` per
request."""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# Written by hand: no request has been parsed, so there is no ASGI cycle to answer through.
_BUSY_BODY = (
    b'{"error":{"message":"The server has too many open connections; retry shortly.",'
    b'"type":"service_unavailable","param":null,"code":"too_many_connections"}}'
)
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: application/json\r\n"
    b"retry-after: 1\r\n"
    b"connection: close\r\n"
    b"content-length: " + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY
)


def guarded_protocol(header_timeout: float, max_connections: int) -> type[HttpToolsProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these two limits."""

    class GuardedHttpToolsProtocol(HttpToolsProtocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            if len(self.connections) > max_connections:
                transport.write(BUSY_RESPONSE)
                transport.close()
                return
            self._start_header_timer()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._header_timer is None:  # a further request on a kept-alive connection
                self._start_header_timer()

        def on_headers_complete(self) -> None:
            self._stop_header_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_header_timer()
            super().connection_lost(exc)

        def _start_header_timer(self) -> None:
            self._header_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _stop_header_timer(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    return GuardedHttpToolsProtocol
