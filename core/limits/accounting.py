"""One admitted request's account: its answer is watched as it goes out; when the answer is
over — in any way: done, error, client gone, timeout — what it is charged is fixed (the usage
reported, or the estimate from the bytes relayed), and when the response is closed the
reservation is settled to it and its stream slots are given back, in one store call, once.

An event stream is watched by its stream observer (``UsageHook``: no second pass over its
bytes); a body the observer does not see (a JSON answer streamed from the upstream, a stream
the cache relays) goes through ``MeteredStream``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from .. import safejson
from ..fetch import FetchResponse, Upstream
from ..http import Response
from ..observer import StreamEnd, StreamHook
from .headers import is_rate_limit_header
from .limiter import Limiter, Reservation
from .stream_usage import UsageMeter, strip_added_usage
from .usage import Usage, from_answer, from_openai

# A JSON answer's usage is read from at most this much of it (answers are far smaller).
_JSON_LIMIT = 4 * 1024 * 1024


class Account:
    __slots__ = (
        "_clock",
        "_done",
        "charged",
        "free",
        "headers",
        "limiter",
        "meter",
        "reservation",
    )

    def __init__(self, limiter: Limiter, reservation: Reservation, clock: Callable[[], float]):
        self.limiter = limiter
        self.reservation = reservation
        self._clock = clock
        self._done = False
        self.meter = UsageMeter()
        self.charged: Usage | None = None  # what is charged, once the answer is over (the log)
        self.headers: tuple[tuple[str, str], ...] = ()  # x-ratelimit-* for the answer
        # A cache hit: it counts as a request but costs no tokens, whatever usage it replays.
        self.free = False

    def end(self, usage: Usage | None = None) -> None:
        """The answer is over: fix what it is charged (``usage``, else what the meter read,
        else the estimate from the bytes relayed). Later calls change nothing."""
        if self.charged is not None:
            return
        if self.free:
            self.charged = Usage()
            return
        if usage is None:
            usage = self.meter.usage
        self.charged = self.limiter.charge(self.reservation, usage, self.meter.bytes)

    async def finish(self, usage: Usage | None = None) -> None:
        """Settle and release (ending the answer first if nothing did); later calls do
        nothing."""
        if self._done:
            return
        self._done = True
        if self.charged is None:
            if usage is None and not self.free:
                self.meter.finish()
            self.end(usage)
        assert self.charged is not None
        await self.limiter.finish(self.reservation, self.charged, self._clock())

    def settle_on_close(self, response: Response) -> None:
        """Settle and release when ``response`` is closed (after its body went out)."""
        response.on_close = (*response.on_close, self.finish)

    def end_json(self, body: bytes) -> None:
        """A whole JSON answer: its ``usage``, or the estimate from its size."""
        self.meter.bytes += len(body)
        self.end(_usage_of(body))

    def settle_json_on_close(self, response: Response) -> None:
        """A whole answer in ``response.body``: read for its usage and settled when the
        response is closed — after the body went out, so the client never waits for it."""
        body = response.body

        async def finish() -> None:
            if self.charged is None and not self._done:
                self.end_json(body)
            await self.finish()

        response.on_close = (*response.on_close, finish)

    def watch(self, response: Response, mode: str) -> None:
        """Meter ``response``'s body on its way out: through its stream observer when it has
        one (``mode`` ``"strip"`` also removes what an added include_usage caused), else
        through a ``MeteredStream``; settled when the response is closed."""
        observer = response.observer
        if observer is not None and mode in ("sse", "strip"):
            observer.add(StrippingUsageHook(self) if mode == "strip" else UsageHook(self))
        else:
            assert response.stream is not None
            response.stream = MeteredStream(response.stream, self, mode, response.upstream)
            response.upstream = None  # the body is no longer the upstream's bytes untouched
        self.settle_on_close(response)


class UsageHook(StreamHook):
    """The account's watch on an event stream: usage read from the events the observer
    passes (only those that mention it are parsed), the bytes counted, and the charge fixed
    when the stream ends, however it ends."""

    __slots__ = ("_account",)

    def __init__(self, account: Account) -> None:
        self._account = account

    def on_events(self, data: bytes) -> None:
        if data.find(b"sage") >= 0:  # cheap test first (find: ``in`` is slower on bytes)
            self._account.meter.events(data)

    def on_end(self, end: StreamEnd) -> None:
        account = self._account
        account.meter.bytes = end.relayed
        account.end()


class StrippingUsageHook(UsageHook):
    """``UsageHook`` for a stream whose usage the gateway asked for: the usage chunk that
    caused and the ``"usage": null`` members are removed before the events go out (their
    usage is read as they are), so the client gets the bytes it would have got."""

    __slots__ = ()
    edits = True

    def edit(self, data: bytes) -> bytes:
        if data.find(b'"usage"') < 0:
            return data
        return strip_added_usage(data, self._account.meter)

    def on_events(self, data: bytes) -> None:
        pass  # usage was read while editing


_DECODER = json.JSONDecoder()


def _usage_of(body: bytes) -> Usage | None:
    """The usage of a JSON answer, decoding only its ``usage`` object when it can be found
    (answers put it last; decoding the whole answer again doubled the cost of a request)."""
    for key in (b'"usageMetadata"', b'"usage"'):
        at = body.rfind(key)
        if at < 0:
            continue
        colon = body.find(b":", at + len(key))
        tail = body[colon + 1 :]
        if len(tail) > safejson.MAX_DEPTH and safejson.depth(tail) > safejson.MAX_DEPTH:
            return None  # too deep to decode safely (fatal under Pyodide)
        try:
            value, _ = _DECODER.raw_decode(tail.decode("utf-8").lstrip())
        except (ValueError, RecursionError, UnicodeDecodeError):
            break
        if key == b'"usageMetadata"':
            return from_answer({"usageMetadata": value})
        if isinstance(value, dict) and "prompt_tokens" in value:
            return from_openai(value)  # Chat Completions: no need to look at the rest
        kind = b'"type":"message"' in body or b'"type": "message"' in body
        return from_answer({"usage": value, **({"type": "message"} if kind else {})})
    try:
        return from_answer(safejson.loads(body))
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


class MeteredStream:
    """An outgoing body the stream observer does not see, metered on its way; the charge is
    fixed when it ends or is closed (the settling waits for the response's close).

    ``mode``: ``"sse"`` meters events; ``"strip"`` also removes what an added include_usage
    caused; ``"json"`` keeps the answer to read its usage at the end; ``"count"`` only counts
    (the usage is metered elsewhere, e.g. from the upstream before translation)."""

    __slots__ = ("_account", "_body", "_buf", "_inner", "_mode", "_upstream")

    def __init__(
        self,
        inner: AsyncIterator[bytes],
        account: Account,
        mode: str,
        upstream: Upstream | None = None,
    ) -> None:
        self._inner = inner
        self._upstream = upstream
        self._account = account
        self._mode = mode
        self._buf = b""  # "strip": an unfinished event, held until its end arrives
        self._body = bytearray() if mode == "json" else None

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> bytes:
        meter = self._account.meter
        while True:
            try:
                chunk = await self._inner.__anext__()
            except StopAsyncIteration:
                tail = self._strip_rest() if self._mode == "strip" else b""
                self._end()
                if tail:
                    return tail
                raise
            except BaseException:
                self._end()
                raise
            if self._mode == "strip":
                chunk = self._strip(chunk)
                if not chunk:
                    continue  # a removed usage chunk, or an unfinished event: read on
            elif self._mode == "sse":
                meter.feed(chunk)
            elif self._body is not None:
                meter.bytes += len(chunk)
                if len(self._body) < _JSON_LIMIT:
                    self._body += chunk
            else:
                meter.bytes += len(chunk)
            return chunk

    def _strip(self, chunk: bytes) -> bytes:
        buf = self._buf + chunk if self._buf else chunk
        cut = _last_event_end(buf)
        self._buf = buf[cut:]
        whole = buf[:cut]
        out = strip_added_usage(whole, self._account.meter) if b'"usage"' in whole else whole
        self._account.meter.bytes += len(out)
        return out

    def _strip_rest(self) -> bytes:
        rest, self._buf = self._buf, b""
        out = strip_added_usage(rest, self._account.meter) if b'"usage"' in rest else rest
        self._account.meter.bytes += len(out)
        return out

    def _end(self) -> None:
        usage = None
        if self._body is not None:
            usage = _usage_of(bytes(self._body))
        elif self._mode == "sse":
            self._account.meter.finish()
        self._account.end(usage)

    async def aclose(self) -> None:
        try:
            if hasattr(self._inner, "aclose"):
                await self._inner.aclose()
            if self._upstream is not None:
                await self._upstream.aclose()
        finally:
            if self._mode == "sse":
                self._account.meter.finish()
            self._account.end()


def _last_event_end(buf: bytes) -> int:
    """Where the last whole event in ``buf`` ends (0: none has ended yet)."""
    end = 0
    for separator in (b"\n\n", b"\r\n\r\n", b"\r\r"):
        at = buf.rfind(separator)
        if at >= 0:
            end = max(end, at + len(separator))
    return end


class MeteredUpstream:
    """One attempt of a passthrough call, as the relay sees it: the gateway's rate-limit
    headers instead of the provider's. Its body is passed on as it is: the answer that
    reaches the client is metered once the relay has kept it (``meter``), so an error the
    retry policy dropped for another attempt settles nothing. ``native_body`` is None: a
    Worker must not hand the body over unread, the gateway has to see it."""

    native_body = None
    __slots__ = ("_upstream", "headers", "mode", "status")

    def __init__(self, upstream: FetchResponse, account: Account, *, strip: bool) -> None:
        self._upstream = upstream
        self.status = upstream.status
        headers = {k: v for k, v in upstream.headers.items() if not is_rate_limit_header(k)}
        headers.update(account.headers)
        self.headers = headers
        self.mode: str | None
        if not 200 <= upstream.status < 300:
            self.mode = None  # an error answer: no tokens were spent
        elif upstream.headers.get("content-type", "").lower().startswith("text/event-stream"):
            self.mode = "strip" if strip else "sse"
        else:
            self.mode = "json"  # a JSON answer, or Gemini's streamed JSON array

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        return self._upstream.aiter_bytes()

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        await self._upstream.aclose()
