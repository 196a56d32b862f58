"""``Fetch`` over httpx: the Lambda transport (one client a warm instance reuses), and an option
for the server (``EDGERELAY_HTTP_CLIENT=httpx``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from edgerelay.core.fetch import FetchError, FetchRequest
from edgerelay.transports.pool_use import Lease, PoolUse


class _RefuseAll(DefaultCookiePolicy):
    # httpx has no "no cookies" switch: a jar that accepts nothing keeps an upstream's
    # Set-Cookie from being replayed on the next request (to any client's request).
    def set_ok(self, cookie, request) -> bool:
        return False


class HttpxResponse:
    """``end``: the event loop's time by which the whole exchange must be over (the total
    timeout; None: no limit). httpx has no total timeout, so each read of the body is bounded
    by what is left of it: a stream that runs past it ends with a timeout ``FetchError``."""

    __slots__ = ("status", "headers", "native_body", "_response", "_lease", "_end")

    def __init__(self, response: httpx.Response, lease: Lease, end: float | None = None) -> None:
        self.status = response.status_code
        self.headers = {k.lower(): v for k, v in response.headers.items()}
        self.native_body = None
        self._response = response
        self._lease = lease
        self._end = end

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        chunks = self._response.aiter_bytes()
        try:
            while True:
                async with asyncio.timeout_at(self._end):  # the same end for every read
                    chunk = await anext(chunks, None)
                if chunk is None:
                    return
                yield chunk
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise FetchError(_describe(exc), timeout=timeout) from None
        except TimeoutError:
            raise FetchError("the total timeout passed", timeout=True) from None
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]  # httpx's async generator

    async def read(self) -> bytes:
        try:
            async with asyncio.timeout_at(self._end):
                return await self._response.aread()
        except httpx.HTTPError as exc:
            timeout = isinstance(exc, httpx.TimeoutException)
            raise FetchError(_describe(exc), timeout=timeout) from None
        except TimeoutError:
            raise FetchError("the total timeout passed", timeout=True) from None

    async def aclose(self) -> None:
        self._lease.end()
        await self._response.aclose()


class HttpxFetch:
    """A client per pool (per provider), each holding at most ``pool_size`` connections.

    Waiting for a free connection and connecting are each bounded by
    ``FetchRequest.connect_timeout`` (httpx's ``pool`` and ``connect`` timeouts). A client
    passed in (Lambda's: one request per invocation) serves every pool."""

    def __init__(
        self,
        client: httpx.AsyncClient | None = None,
        *,
        trust_env: bool = False,
        pool_size: int = 256,
    ) -> None:
        self.client = client
        self._trust_env = trust_env
        self._pool_size = pool_size
        self._clients: dict[str, httpx.AsyncClient] = {}
        self._pools: dict[str, PoolUse] = {}
        # Made once, here (loading the CA bundle costs tens of milliseconds): every pool's
        # client shares it, so opening one on a provider's first request is cheap.
        self._ssl = None if client else httpx.create_ssl_context(trust_env=trust_env)
        # The first pool's client is made now too: making one imports the rest of httpx and
        # httpcore, which would otherwise land on the first request (a Lambda's budget).
        self._spare: httpx.AsyncClient | None = client or self._new_client()

    def client_for(self, pool: str) -> httpx.AsyncClient:
        """The client (and so the connection pool) that serves ``pool``."""
        return self._clients.get(pool) or self._open(pool)

    def _open(self, pool: str) -> httpx.AsyncClient:
        if self.client is not None:
            client = self.client
        else:
            client, self._spare = self._spare or self._new_client(), None
        self._clients[pool] = client
        self._pools[pool] = PoolUse(self._pool_size)
        return client

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            cookies=CookieJar(policy=_RefuseAll()),
            verify=self._ssl if self._ssl is not None else True,
            trust_env=self._trust_env,
            limits=httpx.Limits(
                max_connections=self._pool_size,
                max_keepalive_connections=min(64, self._pool_size),
            ),
            follow_redirects=False,
        )

    def saturated_pools(self) -> list[str]:
        """The pools whose connections are all in use: a further request there would wait."""
        return [name for name, use in self._pools.items() if use.saturated]

    async def __call__(self, request: FetchRequest) -> HttpxResponse:
        client = self.client_for(request.pool)
        # connect and pool bound connecting and the wait for a free pooled connection; read
        # bounds each wait for bytes, so the headers (first byte) and then, once they are in,
        # each gap between chunks (idle).
        connect = request.connect_timeout or request.timeout
        timeout = httpx.Timeout(request.timeout, connect=connect, pool=connect)
        built = client.build_request(
            request.method,
            request.url,
            headers={
                name.encode(): _header_bytes(value) for name, value in request.headers.items()
            },
            content=request.body,
            timeout=timeout,
        )
        lease = self._pools[request.pool].lease()
        loop = asyncio.get_running_loop()
        end = loop.time() + request.total_timeout if request.total_timeout is not None else None
        try:
            # httpx has no total timeout: the total left bounds the wait for the headers too,
            # and then each read of the body (HttpxResponse).
            limit = request.total_timeout
            if limit is not None and request.timeout is not None:
                limit = min(limit, request.timeout)
            async with asyncio.timeout(limit):
                response = await client.send(built, stream=True)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            lease.end()
            raise FetchError(
                _describe(exc), timeout=isinstance(exc, httpx.TimeoutException), connect=True
            ) from None
        except httpx.HTTPError as exc:
            lease.end()
            raise FetchError(
                _describe(exc), timeout=isinstance(exc, httpx.TimeoutException)
            ) from None
        except TimeoutError:
            lease.end()
            raise FetchError("timed out", timeout=True) from None
        except BaseException:
            lease.end()
            raise
        if request.idle_timeout is not None:
            # From here on a read waits for the next chunk: the idle timeout. httpcore looks
            # the read timeout up in the request's extensions when the body is read.
            timeouts = dict(built.extensions.get("timeout", {}))
            timeouts["read"] = request.idle_timeout or None  # 0: the idle timeout is off
            built.extensions["timeout"] = timeouts
        return HttpxResponse(response, lease, end)

    async def aclose(self) -> None:
        clients, self._clients = self._clients, {}
        unused, self._spare = self._spare, None
        everyone = [*clients.values(), *([unused] if unused is not None else [])]
        for client in {id(c): c for c in everyone}.values():
            await client.aclose()


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
