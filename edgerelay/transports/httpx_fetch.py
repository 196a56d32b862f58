"""``Fetch`` over httpx: the design card's client for Lambda, and an option for the server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from edgerelay.core.fetch import FetchError, FetchRequest


class _RefuseAll(DefaultCookiePolicy):
    # httpx has no "no cookies" switch: a jar that accepts nothing keeps an upstream's
    # Set-Cookie from being replayed on the next request (to any client's request).
    def set_ok(self, cookie, request) -> bool:
        return False


class HttpxResponse:
    __slots__ = ("status", "headers", "native_body", "_response")

    def __init__(self, response: httpx.Response) -> None:
        self.status = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self.native_body = None
        self._response = response

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.aiter_bytes():
                yield chunk
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise FetchError(_describe(exc), timeout=timeout) from None

    async def read(self) -> bytes:
        try:
            return await self._response.aread()
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise FetchError(_describe(exc), timeout=timeout) from None

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxFetch:
    def __init__(self, client: httpx.AsyncClient | None = None, *, trust_env: bool = False):
        self.client = client or httpx.AsyncClient(
            cookies=CookieJar(policy=_RefuseAll()),
            trust_env=trust_env,
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=64),
            follow_redirects=False,
        )

    async def __call__(self, request: FetchRequest) -> HttpxResponse:
        built = self.client.build_request(
            request.method,
            request.url,
            headers={name: _header_bytes(value) for name, value in request.headers.items()},
            content=request.body,
            timeout=httpx.Timeout(request.timeout),
        )
        try:
            response = await self.client.send(built, stream=True)
        except httpx.HTTPError as exc:
            raise FetchError(
                _describe(exc), timeout=isinstance(exc, httpx.TimeoutException)
            ) from None
        return HttpxResponse(response)

    async def aclose(self) -> None:
        await self.client.aclose()


def _header_bytes(value: str) -> bytes:
    """httpx encodes a str header value as ASCII and raises on anything else. The ASGI adapter
    decodes the client's header bytes as latin-1, so latin-1 forwards them byte for byte; a
    Lambda event's JSON may hold any character, which goes as UTF-8."""
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8", "replace")


def _describe(exc: httpx.HTTPError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if isinstance(exc, httpx.ConnectError):
        return "connection failed"
    return type(exc).__name__
