"""``Fetch`` over aiohttp: the local server's default (the fastest well-kept client measured)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
from aiohttp.streams import EofStream

from edgerelay.core.fetch import FetchError, FetchRequest
from edgerelay.transports.deadline import Deadline
from edgerelay.transports.pool_use import Lease, PoolUse

_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class AiohttpResponse:
    __slots__ = ("status", "headers", "native_body", "_response", "_lease")

    def __init__(self, response: aiohttp.ClientResponse, lease: Lease) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self.native_body = None
        self._response = response
        self._lease = lease

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return _Chunks(self._response.content)

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except _ERRORS as exc:
            raise FetchError(_describe(exc), timeout=isinstance(exc, TimeoutError)) from None

    async def aclose(self) -> None:
        self._lease.end()
        # release() keeps a fully read connection for reuse; close() drops an unfinished one.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class _Chunks:
    """The body's chunks as they arrive; aiohttp's errors as ``FetchError``. One ``readany``
    per chunk, with no async generator (ours) around aiohttp's iterator (theirs): two frames
    less for every chunk of a stream."""

    __slots__ = ("_content",)

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._content.readany()
        except EofStream:  # as aiohttp's own iterator: the end
            raise StopAsyncIteration from None
        except _ERRORS as exc:
            raise FetchError(_describe(exc), timeout=isinstance(exc, TimeoutError)) from None
        if not chunk:
            raise StopAsyncIteration
        return chunk


class AiohttpFetch:
    """A session per pool (per provider): no cookies kept, no proxy or .netrc from the env.

    Each pool holds at most ``pool_size`` connections. A request that finds them all busy
    waits for one at most ``FetchRequest.connect_timeout`` (aiohttp's ``connect`` timeout is
    that wait plus the connect itself), then fails as a timeout instead of waiting forever."""

    def __init__(self, *, trust_env: bool = False, pool_size: int = 256) -> None:
        self._trust_env = trust_env
        self._pool_size = pool_size
        self._sessions: dict[str, aiohttp.ClientSession] = {}
        self._pools: dict[str, PoolUse] = {}

    def _open(self, pool: str) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._pool_size, ttl_dns_cache=300)
        session = self._sessions[pool] = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=self._trust_env,
            auto_decompress=True,
        )
        self._pools[pool] = PoolUse(self._pool_size)
        return session

    def saturated_pools(self) -> list[str]:
        """The pools whose connections are all in use: a further request there would wait."""
        return [name for name, use in self._pools.items() if use.saturated]

    async def __call__(self, request: FetchRequest) -> AiohttpResponse:
        session = self._sessions.get(request.pool) or self._open(request.pool)
        # connect bounds the wait for a free pooled connection plus connecting; sock_read
        # each gap between body chunks (idle); total, the whole exchange body included. The
        # wait for the headers (first byte) is bounded around the request itself, below.
        idle = request.idle_timeout if request.idle_timeout is not None else request.timeout
        idle = idle or None  # 0: the idle timeout is off
        timeout = aiohttp.ClientTimeout(
            total=request.total_timeout,
            connect=request.connect_timeout,
            sock_connect=request.connect_timeout or request.timeout,
            sock_read=idle,
        )
        sent = session.request(
            request.method,
            request.url,
            headers=request.headers,
            data=request.body,
            timeout=timeout,
            allow_redirects=False,
        )
        lease = self._pools[request.pool].lease()
        try:
            # In this task (a Deadline, not wait_for's new task): with wait_for, data that
            # arrived together with the connection's close was lost (tests/server/test_mid_stream).
            with Deadline(request.timeout):
                response = await sent
        except aiohttp.ClientConnectorError as exc:
            lease.end()
            raise FetchError(_describe(exc), connect=True) from None
        except aiohttp.ConnectionTimeoutError:
            lease.end()
            raise FetchError("connect timed out", timeout=True, connect=True) from None
        except _ERRORS as exc:
            lease.end()
            raise FetchError(_describe(exc), timeout=isinstance(exc, TimeoutError)) from None
        except BaseException:
            lease.end()
            raise
        return AiohttpResponse(response, lease)

    async def aclose(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()


def _describe(exc: BaseException) -> str:
    # Never the URL or headers: only what went wrong.
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    return type(exc).__name__
