"""The Worker's side of the seams: the inbound JS request as ``core.Request``, ``self.env`` as
the environment core reads its settings from, and ``core.Response`` as a Worker ``Response``.

Three ways out, cheapest first:

* the upstream's bytes unchanged (``response.upstream.native_body``, a passthrough) while
  nothing watches the stream observer: the upstream's own ``ReadableStream`` becomes the
  client's body, so the runtime moves the bytes and no Python runs per chunk;
* ``body`` bytes: one ``Response``;
* a stream core produces, transforms or observes (``mock/echo``, translated providers, a
  passthrough stream with EDGERELAY_ZERO_COPY=false or a hook watching it): a pump task
  writes each chunk to a ``TransformStream`` as soon as core yields it, and the client reads
  the readable side. ``ctx.waitUntil`` keeps the pump alive after ``fetch`` has returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import js
from pyodide.ffi import JsException, create_proxy, to_js
from workers import Response as WorkerResponse

from edgerelay.core import GatewayError, Request, Response, error_response
from edgerelay.core.body import declared_too_large, read_limited
from edgerelay.core.fetch import FetchError
from edgerelay.core.responses import too_large

try:
    from pyodide.ffi import jsnull
except ImportError:  # pragma: no cover - only on old Pyodide
    jsnull = None

# Statuses whose response must have no body (the Response constructor throws otherwise).
_NULL_BODY = frozenset({101, 204, 205, 304})


class WorkerEnv(Mapping[str, str]):
    """``self.env`` as a read-only mapping of its string values: vars and secrets, read under
    the same names as the environment variables of the other platforms. Bindings (KV, R2, ...)
    and JSON vars are not strings and so are not settings."""

    __slots__ = ("_env",)

    def __init__(self, env) -> None:
        self._env = env

    def __getitem__(self, name: str) -> str:
        try:
            value = getattr(self._env, name)
        except AttributeError:
            raise KeyError(name) from None
        if not isinstance(value, str):
            raise KeyError(name)
        return value

    def __iter__(self) -> Iterator[str]:
        raw = getattr(self._env, "_env", self._env)  # the SDK's wrapper keeps the JS object
        return (str(name) for name in js.Object.keys(raw) if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


async def to_core_request(
    request, max_body: int, too_large_response: Callable[[Request], Response] | None = None
) -> Request | Response:
    """The inbound request (a ``workers.Request`` or a JS ``Request``) as core's ``Request``,
    or the 413 answer when its body is larger than ``max_body`` (``too_large_response`` gives
    it in the route's error format: ``Gateway.too_large_response``)."""
    js_request = getattr(request, "js_object", request)
    headers = {str(name): str(value) for name, value in js_request.headers}
    url = urlsplit(js_request.url)  # WHATWG-serialised: the path is still percent-encoded
    inbound = Request(
        str(js_request.method),
        url.path or "/",
        url.query,
        headers,
        b"",
        headers.get("cf-connecting-ip"),
    )
    refuse = too_large_response or (lambda _: error_response(too_large(max_body)))
    if declared_too_large(headers, max_body):
        return refuse(inbound)  # refuse before reading a byte
    stream = js_request.body
    try:
        body = b""
        if stream is not None and stream is not jsnull:
            body = await read_limited(_chunks(stream.getReader()), max_body)
    except JsException:  # the client broke off the upload
        return error_response(GatewayError(400, "The request body could not be read."))
    if body is None:
        return refuse(inbound)
    inbound.body = body
    return inbound


async def _chunks(reader):
    """A JS body reader's chunks; one left unfinished (the body is over the limit) is
    cancelled, which stops the upload."""
    done = False
    try:
        while True:
            result = await reader.read()
            if result.done:
                done = True
                return
            yield result.value.to_bytes()
    finally:
        if not done:
            await reader.cancel()


def js_headers(headers: list[tuple[str, str]]):
    """A JS ``Headers``; ``append`` keeps repeated names (e.g. several ``vary``)."""
    result = js.Headers.new()
    for name, value in headers:
        result.append(name, value)
    return result


def to_worker_response(response: Response, ctx, *, zero_copy: bool = True) -> WorkerResponse:
    """Core's answer as the Worker's ``Response``; see the module docstring for the three ways.

    ``zero_copy`` (EDGERELAY_ZERO_COPY): hand an upstream's stream to the client untouched
    while no hook watches it. That costs no CPU per chunk, but the stream observer then does
    not see it: an upstream that breaks mid-way, or ends without its end marker, reaches the
    client as the runtime leaves it (docs/cloudflare.md)."""
    headers = js_headers(response.headers)
    status = response.status
    if status in _NULL_BODY:
        # The constructor throws on any body here, even an empty stream: an upstream's 204 or
        # 304 (its own body is null) is passed on bodiless.
        return WorkerResponse(None, status=status, headers=headers)
    if zero_copied(response, zero_copy):
        # Zero-copy: the client reads the upstream's ReadableStream itself; a client that
        # leaves cancels it, and the runtime drops the upstream connection.
        return WorkerResponse(response.upstream.native_body, status=status, headers=headers)
    if response.stream is None:
        if response.on_close:
            keep_alive(ctx, asyncio.ensure_future(response.aclose()))
        return WorkerResponse(response.body or None, status=status, headers=headers)
    return WorkerResponse(start_pump(response, ctx), status=status, headers=headers)


def zero_copied(response: Response, zero_copy: bool) -> bool:
    up, seen = response.upstream, response.observer
    bare = seen is None or (zero_copy and not seen.watched)
    return up is not None and up.native_body is not None and bare


def start_pump(response: Response, ctx):
    """Start copying ``response.stream`` into a ``TransformStream``; return its readable side."""
    channel = js.TransformStream.new()
    writer = channel.writable.getWriter()
    task = asyncio.ensure_future(pump(response, writer))
    # The client left: the readable side is cancelled, the writer errors and `closed`
    # rejects. Cancel the pump at once, even while it waits for the upstream.
    writer.closed.catch(lambda _reason: task.cancel())
    keep_alive(ctx, task)
    return channel.readable


async def pump(response: Response, writer) -> None:
    """Write each chunk as soon as core yields it. ``await write`` is the backpressure: it
    resolves once the client has taken the chunk, so nothing piles up in the Worker."""
    try:
        async for chunk in response.stream:
            if chunk:
                await writer.write(to_js(chunk))  # bytes -> a Uint8Array copy
        await writer.close()
    except (JsException, asyncio.CancelledError):
        pass  # the client went away (a failed write, or a cancel): no one to tell
    except Exception as exc:  # a bug of ours, or a body that is not an event stream broke off
        await _end_broken(response, writer, exc)
    finally:
        await response.aclose()  # close core's stream and abort an unfinished upstream read


async def _end_broken(response: Response, writer, exc: Exception) -> None:
    """An event stream ends with the route's terminal error event and a clean end, so the
    client reads it; any other body can only be broken off, so the client sees it failed."""
    if isinstance(exc, FetchError):
        print(f"edgerelay: the upstream body broke off: {exc}")
        error = GatewayError(502, f"The upstream stream broke off: {exc}")
    else:
        import logging  # only on this rare path: slow to import

        logging.getLogger("edgerelay").exception("stream failed")
        error = GatewayError(500, "Internal gateway error.")
    last = response.end_with(error)
    try:
        if last:
            await writer.write(to_js(last))
            await writer.close()
        else:
            await writer.abort(js.Error.new("the gateway's stream failed"))
    except JsException:
        pass


# The ExecutionContext of the request being served, set by the entry for each request (a
# context variable: each request's task has its own copy), for work that request starts.
REQUEST_CTX: ContextVar[Any] = ContextVar("edgerelay_request_ctx", default=None)


def keep_alive_here(task: asyncio.Task) -> None:
    """``keep_alive`` in the current request's context: a shared upstream call the current
    request started goes on after this request has finished, for the others that read it."""
    ctx = REQUEST_CTX.get()
    if ctx is not None:
        keep_alive(ctx, task)


def keep_alive(ctx, task: asyncio.Task) -> None:
    """Tell the runtime to keep the isolate running until ``task`` ends (``ctx.waitUntil``).

    An owned proxy, released when the task is done: the JS side may await it after this call
    returns (a borrowed proxy would be destroyed by then unless the runtime copies it)."""
    proxy = create_proxy(task)
    ctx.waitUntil(proxy)
    task.add_done_callback(lambda _task: proxy.destroy())
