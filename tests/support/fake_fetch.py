"""An in-memory ``Fetch``: a handler function answers each request, as httpx's MockTransport."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field

from edgerelay.core.fetch import FetchError, FetchRequest


@dataclass
class FakeResponse:
    status: int = 200
    headers: dict = field(default_factory=dict)
    chunks: Iterable[bytes] = ()
    error_after: int | None = None  # raise FetchError after this many chunks
    native_body: object = None
    closed: bool = False
    read_chunks: int = 0

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        for i, chunk in enumerate(self.chunks):
            if i == self.error_after:
                raise FetchError("connection reset")
            self.read_chunks += 1
            yield chunk
        if self.error_after is not None:  # cut after the last chunk, before a clean end
            raise FetchError("connection reset")

    async def read(self) -> bytes:
        return b"".join([c async for c in self.aiter_bytes()])

    async def aclose(self) -> None:
        self.closed = True


class FakeFetch:
    """Records every request; ``handler(request) -> FakeResponse`` (or raises FetchError)."""

    def __init__(self, handler: Callable[[FetchRequest], FakeResponse]) -> None:
        self.handler = handler
        self.requests: list[FetchRequest] = []
        self.responses: list[FakeResponse] = []
        self.closed = False

    async def __call__(self, request: FetchRequest) -> FakeResponse:
        self.requests.append(request)
        response = self.handler(request)
        self.responses.append(response)
        return response

    async def aclose(self) -> None:
        self.closed = True


def split_every(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]
