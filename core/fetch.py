"""The Fetch seam: the one way core talks to an upstream.

Core never opens a socket. Each platform supplies a ``Fetch`` (httpx or aiohttp on CPython,
``js.fetch`` in a Cloudflare Worker, a fake in tests) that turns a ``FetchRequest`` into a
``FetchResponse``. Implementations raise ``FetchError`` when the upstream cannot be reached.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Mapping
from contextvars import ContextVar
from typing import Any, NamedTuple, Protocol

# True inside a task whose upstream calls serve many clients (the response cache's one call per
# key): the requests it sends are ``shared``, so no single client's leaving aborts them. A
# context variable: each asyncio task has its own copy, so only that task's calls are marked.
SHARED_CALLS: ContextVar[bool] = ContextVar("edgerelay_shared_calls", default=False)


class FetchRequest(NamedTuple):
    """An outbound HTTP request: everything a transport needs, nothing platform-specific."""

    method: str
    url: str
    headers: Mapping[str, str] = {}  # never mutated
    body: bytes | AsyncIterable[bytes] | None = None  # an iterable: forwarded as it arrives
    timeout: float | None = None  # seconds for the whole exchange up to the response headers
    # Which connection pool serves it (the provider's name: one pool each, so a provider whose
    # connections are all busy cannot hold up the others) and how long waiting for a free
    # connection plus connecting may take. Transports without pools ignore both.
    pool: str = ""
    connect_timeout: float | None = None
    # Serves many requests (a download others wait for): a transport that aborts an upstream
    # call when its client leaves (the Worker) must not tie this one to the client that started it.
    shared: bool = False
    # Seconds between two body chunks (None: ``timeout``; 0: not timed, EDGERELAY_IDLE_TIMEOUT=off).
    idle_timeout: float | None = None
    total_timeout: float | None = None  # seconds for everything, body included (None: no limit)


class Upstream(Protocol):
    """What a response keeps of the upstream answer it relays: enough to close it with the
    response and, for an adapter that can, to hand its ``native_body`` on untouched."""

    @property
    def status(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]:
        """Lower-case names."""
        ...

    @property
    def native_body(self) -> Any:
        """The platform's own body object (a JS ReadableStream in a Worker), or None. When core
        decides the client gets the upstream's bytes unchanged, an adapter may hand it on as is."""
        ...

    async def aclose(self) -> None:
        """Release the connection, aborting the upstream read if the body is unfinished."""
        ...


class FetchResponse(Upstream, Protocol):
    """An upstream response whose body has not been read yet."""

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        """Yield body chunks as they arrive, without buffering."""
        ...

    async def read(self) -> bytes:
        """Read the whole body."""
        ...


class Body(Protocol):
    """What reads a body as it arrives: a ``FetchResponse``, or a view of one."""

    def aiter_bytes(self) -> AsyncIterator[bytes]: ...


class Fetch(Protocol):
    """Sends one ``FetchRequest``; raises ``FetchError`` when the upstream cannot be reached
    or does not answer in time."""

    async def __call__(self, request: FetchRequest) -> FetchResponse: ...

    async def aclose(self) -> None:
        """Release pooled connections at shutdown (a transport without any does nothing)."""
        ...


class FetchError(Exception):
    """The upstream could not be reached, or did not answer in time."""

    def __init__(self, message: str, *, timeout: bool = False, connect: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        self.connect = connect  # it failed before a connection was made: nothing was sent
