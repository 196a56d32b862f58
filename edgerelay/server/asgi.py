"""The ASGI adapter: turns an ASGI request into core's ``Request`` and writes core's ``Response``
back, streaming chunk by chunk. A client that goes away cancels the upstream read at once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from edgerelay.core import (
    Config,
    ConfigError,
    Gateway,
    GatewayError,
    Request,
    Response,
    load_config,
    new_id,
)
from edgerelay.core.body import declared_too_large
from edgerelay.core.fetch import Fetch, FetchError
from edgerelay.core.requestlog import with_request_id
from edgerelay.core.responses_api.store import ResponseStore
from edgerelay.server.request_log import LogSink
from edgerelay.server.upload import Upload
from edgerelay.transports.deadline import Deadline
from edgerelay.transports.lazy import LazyFetch

log = logging.getLogger("edgerelay")

# The browser demo, served at / by the local server when run from a checkout (make dev).
DEMO_PAGE = Path(__file__).resolve().parents[2] / "examples" / "browser" / "index.html"


def _log():
    import logging  # only on the rare paths that log

    return logging.getLogger("edgerelay")


def read_file(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def default_fetch(
    env: Mapping[str, str], trust_env: bool = False, pool_size: int = 256
) -> LazyFetch:
    """aiohttp unless EDGERELAY_HTTP_CLIENT=httpx; both measured in bench/. Imported on
    first use (transports/lazy.py): the server starts without it."""
    client = env.get("EDGERELAY_HTTP_CLIENT", "").strip() or "aiohttp"
    if client not in ("aiohttp", "httpx"):
        raise ConfigError("EDGERELAY_HTTP_CLIENT", "must be aiohttp or httpx")
    module, name = (
        ("edgerelay.transports.httpx_fetch", "HttpxFetch")
        if client == "httpx"
        else ("edgerelay.transports.aiohttp_fetch", "AiohttpFetch")
    )
    return LazyFetch(module, name, trust_env=trust_env, pool_size=pool_size)


def default_verifier(config: Config):
    """The JWT signature verifier, when EDGERELAY_JWKS_URL needs one (imports cryptography)."""
    if config.identity is None or not config.identity.jwks_url:
        return None
    from edgerelay.transports.signatures import CryptographyVerifier

    return CryptographyVerifier()


class EdgerelayASGI:
    def __init__(
        self,
        config: Config,
        fetch: Fetch,
        *,
        clock: Callable[[], float] = time.time,
        response_store: ResponseStore | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        random: Callable[[], float] = random.random,
        cache_store: object = None,
        limit_store=None,
        log_sink: LogSink | None = None,
    ):
        self.gateway = Gateway(
            config,
            fetch,
            clock=clock,
            new_id=new_id,
            verifier=default_verifier(config),
            target="server",
            response_store=response_store,  # None: the gateway keeps them in memory
            sleep=sleep,
            random=random,
            cache_store=cache_store,
            new_request_id=new_id,
            limit_store=limit_store,
        )
        self.max_body = config.max_body_bytes
        self.body_idle = config.body_idle_timeout
        self.fetch = fetch
        self.limit_store = limit_store
        self.log_sink = log_sink or LogSink()
        # Called once start-up is over, the HTTP client library loaded (edgerelay serve sets
        # the garbage collector then: server/gc_tuning.py).
        self.on_ready: Callable[[], None] | None = None

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http(self, scope, receive, send) -> None:
        if scope["path"] == "/" and scope["method"] == "GET" and DEMO_PAGE.is_file():
            page = Response(
                200, [("content-type", "text/html; charset=utf-8")], DEMO_PAGE.read_bytes()
            )
            await _send_bytes(page, _Sent(send))
            return
        started = time.perf_counter()
        sent = _Sent(send)
        try:
            await self._respond(scope, receive, sent)
        finally:
            log = getattr(sent.response, "log", None)
            if log is not None:
                now = time.perf_counter()
                log.duration_ms = round((now - started) * 1000, 2)
                if sent.first is not None:
                    log.ttfb_ms = round((sent.first - started) * 1000, 2)
                log.bytes_out = sent.bytes
                if sent.status is None:
                    log.status = 0  # the client left before any answer
                self.log_sink.write(log, self.gateway.redactor)

    async def _respond(self, scope, receive, sent: _Sent) -> None:
        raw_path = scope.get("raw_path")
        client = scope.get("client")
        request = Request(
            scope["method"],
            raw_path.decode("latin-1") if raw_path else scope["path"],
            scope["query_string"].decode("latin-1"),
            {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            b"",
            client[0] if client else None,
        )
        upload: Upload | None = None
        if self.gateway.streams_upload(request):  # forwarded as it arrives, not read first
            if declared_too_large(request.headers, self.max_body):
                sent.response = self.gateway.too_large_response(request)
                await _send_bytes(sent.response, sent)
                return
            upload = request.body_stream = Upload(receive, self.max_body, self.body_idle)
        else:
            body = await _read_body(receive, request.headers, self.max_body, self.body_idle)
            if body is None:  # the client left while sending
                return
            if body is TOO_LARGE:
                sent.response = self.gateway.too_large_response(request)
                await _send_bytes(sent.response, sent)
                return
            if body is STALLED:
                sent.response = self.gateway.body_stalled_response(request)
                await _send_bytes(sent.response, sent)
                return
            assert isinstance(body, bytes)
            request.body = body
        # From here on, a client that goes away cancels this task wherever it is: waiting for
        # the upstream's headers (a long non-stream answer) or between stream chunks.
        guard = DisconnectGuard(receive, upload)
        response = None
        try:
            response = sent.response = await self.gateway.handle(request)
            if upload is not None and (upload.too_large or upload.gone or upload.stalled):
                await response.aclose()  # the upstream call failed because of the upload
                if upload.gone:
                    return
                if upload.stalled:
                    response = self.gateway.body_stalled_response(request)
                else:
                    response = self.gateway.too_large_response(request)
                sent.response = response
            if response.stream is None:
                await _send_bytes(response, sent)
            else:
                await _send_stream(response, sent)
        except asyncio.CancelledError:
            if not guard.gone:
                # A shutdown, not the client leaving: one line, no traceback (cli.py keeps
                # uvicorn from logging the cancellation again, with one).
                _log().warning(
                    "edgerelay: %s %s cut short by the shutdown", request.method, scope["path"]
                )
                raise
            guard.task.uncancel()
        except OSError:
            pass  # the client went away mid-write
        finally:
            guard.stop()
            if response is not None:
                await response.aclose()

    def _ready(self, _preloaded: object) -> None:
        if self.on_ready is not None:
            self.on_ready()

    async def _lifespan(self, receive, send) -> None:
        preloading = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
                preload = getattr(self.fetch, "preload", None)
                if preload is not None:  # the HTTP client library, off the event loop
                    preloading = asyncio.get_running_loop().run_in_executor(None, preload)
                if self.on_ready is not None:
                    if preloading is None:
                        self.on_ready()
                    else:  # in the event loop's thread, once the import is done
                        preloading.add_done_callback(self._ready)
            elif message["type"] == "lifespan.shutdown":
                if preloading is not None:  # an import cut short leaves a half-made module
                    with contextlib.suppress(Exception):  # a failed one fails the first call
                        await preloading
                for resource in (self.fetch, self.limit_store, self.gateway.response_store):
                    close = getattr(resource, "aclose", None)
                    if close is not None:
                        await close()
                await send({"type": "lifespan.shutdown.complete"})
                return


TOO_LARGE = object()
STALLED = object()


class _Sent:
    """What went out, noted by ``_send_bytes`` and ``_send_stream`` as they send (not by a
    wrapper around ``send``: one coroutine less per message, ~50 per stream): the status,
    when the first body byte left, how many bytes; and the response being sent (its log
    record), also when sending is cut short."""

    __slots__ = ("bytes", "first", "response", "send", "status")

    def __init__(self, send) -> None:
        self.send = send  # the server's own
        self.status: int | None = None
        self.first: float | None = None
        self.bytes = 0
        self.response: Response | None = None


async def _read_body(
    receive, headers: Mapping[str, str], limit: int, idle: float
) -> bytes | object | None:
    """The whole body; None if the client left; TOO_LARGE past ``limit`` (reading stops);
    STALLED when nothing arrived for ``idle`` seconds (a Content-Length larger than what is
    sent, or a client that just stops)."""
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return TOO_LARGE
    chunks = []
    size = 0
    while True:
        try:
            with Deadline(idle):
                message = await receive()
        except TimeoutError:
            return STALLED
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                return TOO_LARGE
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


# Bytes HTTP/1.1 cannot carry in a header value; uvicorn refuses to write them.
_UNSENDABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f]")


def _encode_headers(headers: list[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Header values as bytes: latin-1, ASGI's convention (byte for byte what this adapter
    decoded from the client); else UTF-8, as the upstream client decoded them (aiohttp keeps
    undecodable bytes as surrogates). A value HTTP cannot carry is dropped: an upstream's
    odd request id must not cost the client its answer."""
    out = []
    for name, value in headers:
        if _UNSENDABLE.search(value):
            continue
        try:
            raw = value.encode("latin-1")
        except UnicodeEncodeError:
            try:
                raw = value.encode("utf-8", "surrogateescape")
            except UnicodeEncodeError:
                continue
        out.append((name.encode("latin-1"), raw))
    return out


async def _send_bytes(response: Response, sent: _Sent) -> None:
    headers = _encode_headers(with_request_id(response))
    body = response.body
    headers.append((b"content-length", str(len(body)).encode()))
    sent.status = response.status
    await sent.send({"type": "http.response.start", "status": response.status, "headers": headers})
    if body:
        sent.first = time.perf_counter()
        sent.bytes = len(body)
    await sent.send({"type": "http.response.body", "body": body})


async def _send_stream(response: Response, sent: _Sent) -> None:
    """Each chunk as core yields it. An event stream that breaks off has already been ended
    by core with the route's terminal error event; should the stream itself raise (a bug),
    the client still gets that event and a clean end, and the log the traceback. A body that
    is not an event stream and breaks off can only be cut: the response is left unfinished,
    so the server drops the connection and the client sees it was incomplete."""
    stream = response.stream
    assert stream is not None
    send = sent.send
    headers = _encode_headers(with_request_id(response))
    sent.status = response.status
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    try:
        async for chunk in stream:
            if sent.first is None and chunk:
                sent.first = time.perf_counter()
            sent.bytes += len(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except FetchError as exc:  # not an event stream: core's observer catches it for those
        log.warning("the upstream body broke off; the response is cut: %s", exc)
        return
    except (asyncio.CancelledError, OSError):
        raise
    except Exception:
        log.exception("response body failed")
        if response.observer is None:
            return
        last = response.end_with(GatewayError(500, "Internal gateway error."))
        if sent.first is None and last:
            sent.first = time.perf_counter()
        sent.bytes += len(last)
        await send({"type": "http.response.body", "body": last, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


class DisconnectGuard:
    """Cancels the current task when the client disconnects. It starts listening only after
    ``DELAY``: most requests are over by then, and a listening task from the first moment was
    measured to add ~0.15 ms to the first byte of a stream. A client that leaves sooner is
    noticed at most ``DELAY`` late."""

    DELAY = 0.05

    __slots__ = ("_receive", "_timer", "_upload", "_watcher", "gone", "task")

    def __init__(self, receive, upload: Upload | None = None) -> None:
        self._receive = receive
        self._upload = upload  # while an upload is being forwarded, it owns receive()
        task = asyncio.current_task()
        assert task is not None  # made inside the request's own task
        self.task = task
        self.gone = False
        self._watcher: asyncio.Task | None = None
        self._timer = asyncio.get_running_loop().call_later(self.DELAY, self._start)

    def _start(self) -> None:
        if self._upload is not None and not self._upload.finished:
            # Not yet: two readers of receive() would steal each other's messages. The upload
            # notices a client that leaves mid-way itself.
            self._timer = asyncio.get_running_loop().call_later(self.DELAY, self._start)
            return
        self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass
        self.gone = True
        self.task.cancel()

    def stop(self) -> None:
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


def create_app(
    env: Mapping[str, str] | None = None,
    fetch: Fetch | None = None,
    **seams,
) -> EdgerelayASGI:
    """Build the app from the environment; raises ``ConfigError`` naming a bad setting.
    ``seams`` (``clock``, ``sleep``, ``random``) replace the real ones, for tests."""
    env = os.environ if env is None else env
    config = load_config(env, read_file)
    fetch = fetch or default_fetch(env, config.trust_env, config.pool_size)
    store = None
    if env.get("EDGERELAY_STORE"):  # redis-py is imported only for a store that needs it
        from edgerelay.stores.select import response_store_for

        store = response_store_for(config, env)
    from edgerelay.stores.select import store_for

    seams = {name: value for name, value in seams.items() if value is not None}
    from edgerelay.stores.cache_select import cache_store_for

    return EdgerelayASGI(
        config,
        fetch,
        response_store=store,
        cache_store=cache_store_for(config, env),
        limit_store=store_for(config, env, memory_ok=True),
        log_sink=LogSink.from_env(env),
        **seams,
    )
