"""Core's view of an inbound HTTP request and of the response it decides on.

Adapters (ASGI, Worker, Lambda) translate their platform's request into ``Request`` and write
``Response`` back. A response body is exactly one of: ``body`` bytes, or ``stream`` (an async
iterator of bytes). When ``upstream`` is set, ``stream`` is that upstream body unchanged: an
adapter that can forward ``upstream.native_body`` without touching it (a Worker) may do so.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from .fetch import FetchResponse


@dataclass(slots=True)
class Request:
    method: str
    path: str  # raw path as received, still percent-encoded
    query: str = ""  # raw query string without the "?"
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    body: bytes = b""
    client_ip: str | None = None


@dataclass(slots=True)
class Response:
    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    upstream: FetchResponse | None = None

    @property
    def is_stream(self) -> bool:
        return self.stream is not None

    async def aclose(self) -> None:
        """Stop producing the body: close the stream and abort the upstream read, if any."""
        stream, self.stream = self.stream, None
        if stream is not None and hasattr(stream, "aclose"):
            await stream.aclose()
        if self.upstream is not None:
            await self.upstream.aclose()
