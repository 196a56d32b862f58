"""``Fetch`` over aiohttp: the local server's default (the fastest well-kept client measured)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from edgerelay.core.fetch import FetchError, FetchRequest

_ERRORS = (aiohttp.ClientError, asyncio.TimeoutError, OSError)


class AiohttpResponse:
    __slots__ = ("status", "headers", "native_body", "_response")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.status = response.status
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self.native_body = None
        self._response = response

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _ERRORS as exc:
            raise FetchError(_describe(exc), timeout=isinstance(exc, TimeoutError)) from None

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except _ERRORS as exc:
            raise FetchError(_describe(exc), timeout=isinstance(exc, TimeoutError)) from None

    async def aclose(self) -> None:
        # release() keeps a fully read connection for reuse; close() drops an unfinished one.
        if self._response.content.at_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpFetch:
    """One shared session per process: no cookies kept, no proxy or .netrc from the env."""

    def __init__(self, *, trust_env: bool = False, limit: int = 256) -> None:
        self._trust_env = trust_env
        self._limit = limit
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(limit=self._limit, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            trust_env=self._trust_env,
            auto_decompress=True,
        )
        return self._session

    async def __call__(self, request: FetchRequest) -> AiohttpResponse:
        session = self._session or self._open()
        # sock_read bounds both the wait for headers and each gap between stream chunks.
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=request.timeout, sock_read=request.timeout
        )
        try:
            response = await session.request(
                request.method,
                request.url,
                headers=request.headers,
                data=request.body,
                timeout=timeout,
                allow_redirects=False,
            )
        except _ERRORS as exc:
            raise FetchError(_describe(exc), timeout=isinstance(exc, TimeoutError)) from None
        return AiohttpResponse(response)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _describe(exc: BaseException) -> str:
    # Never the URL or headers: only what went wrong.
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"connection failed ({exc.os_error.strerror or type(exc.os_error).__name__})"
    return type(exc).__name__
