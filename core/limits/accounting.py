"""One admitted request's account: its response is watched as it goes out, and when it ends —
in any way: done, error, client gone, timeout — the reservation is settled to the usage that was
reported (or estimated from the bytes relayed) and its stream slots are released, once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable

from .. import safejson
from ..fetch import FetchResponse, Upstream
from .headers import is_rate_limit_header
from .limiter import Limiter, Reservation
from .stream_usage import IncludeUsageStripper, UsageMeter
from .usage import Usage, from_answer

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
        self.charged: Usage | None = None  # what was charged, once finished (for the log)
        self.headers: tuple[tuple[str, str], ...] = ()  # x-ratelimit-* for the answer
        # A cache hit: it counts as a request but costs no tokens, whatever usage it replays.
        self.free = False

    async def finish(self, usage: Usage | None = None) -> None:
        """Settle and release; later calls do nothing."""
        if self._done:
            return
        self._done = True
        if self.free:
            usage = Usage()
        elif usage is None:
            self.meter.finish()
            usage = self.meter.usage
        now = self._clock()
        self.charged = await self.limiter.settle(self.reservation, usage, self.meter.bytes, now)
        await self.limiter.release(self.reservation)

    async def settle_json(self, body: bytes) -> None:
        """A whole JSON answer: its ``usage``, or the estimate from its size."""
        self.meter.bytes += len(body)
        await self.finish(_usage_of(body) or None)


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
        if safejson.depth(tail) > safejson.MAX_DEPTH:
            return None  # too deep to decode safely (fatal under Pyodide)
        try:
            value, _ = _DECODER.raw_decode(tail.decode("utf-8").lstrip())
        except (ValueError, RecursionError, UnicodeDecodeError):
            break
        if key == b'"usageMetadata"':
            return from_answer({"usageMetadata": value})
        kind = b'"type":"message"' in body or b'"type": "message"' in body
        return from_answer({"usage": value, **({"type": "message"} if kind else {})})
    try:
        return from_answer(safejson.loads(body))
    except (ValueError, RecursionError, UnicodeDecodeError):
        return None


class MeteredStream:
    """An outgoing body that feeds the account on its way and finishes it at the end.

    ``mode``: ``"sse"`` meters events; ``"strip"`` also removes what an added include_usage
    caused; ``"json"`` keeps the answer to read its usage at the end; ``"count"`` only counts
    (the usage is metered elsewhere, e.g. from the upstream before translation)."""

    __slots__ = ("_account", "_body", "_inner", "_mode", "_stripper", "_upstream")

    def __init__(
        self,
        inner: AsyncIterator[bytes],
        account: Account,
        mode: str,
        upstream: Upstream | None = None,
    ) -> None:
        self._inner = inner
        self._account = account
        self._mode = mode
        self._upstream = upstream
        self._stripper = IncludeUsageStripper(account.meter) if mode == "strip" else None
        self._body = bytearray() if mode == "json" else None

    def __aiter__(self) -> MeteredStream:
        return self

    async def __anext__(self) -> bytes:
        meter = self._account.meter
        while True:
            try:
                chunk = await self._inner.__anext__()
            except StopAsyncIteration:
                tail = self._stripper.finish() if self._stripper is not None else b""
                await self._end()
                if tail:
                    return tail
                raise
            except BaseException:
                await self._end()
                raise
            if self._stripper is not None:
                chunk = self._stripper.feed(chunk)
                if not chunk:
                    continue  # a removed usage chunk: wait for the next one
            elif self._mode == "sse":
                meter.feed(chunk)
            elif self._body is not None:
                meter.bytes += len(chunk)
                if len(self._body) < _JSON_LIMIT:
                    self._body += chunk
            return chunk

    async def _end(self) -> None:
        usage = None
        if self._body is not None:
            usage = _usage_of(bytes(self._body))
        await self._account.finish(usage)

    async def aclose(self) -> None:
        try:
            if hasattr(self._inner, "aclose"):
                await self._inner.aclose()
            if self._upstream is not None:
                await self._upstream.aclose()
        finally:
            await self._account.finish()


class MeteredUpstream:
    """One attempt of a passthrough call, as the relay sees it: the gateway's rate-limit
    headers instead of the provider's, a success's body metered on its way (usage read from
    the JSON answer or the stream's own usage events; what an added include_usage caused
    removed). Only the answer that reaches the client finishes the account (``final``, set
    once the retry policy kept it; a success always is): an error the policy dropped for
    another attempt is closed without settling anything. ``native_body`` is None: a Worker
    must not hand the body over unread, the gateway has to see it."""

    native_body = None
    __slots__ = ("_account", "_mode", "_upstream", "final", "headers", "status")

    def __init__(self, upstream: FetchResponse, account: Account, *, strip: bool) -> None:
        self._upstream = upstream
        self._account = account
        self.status = upstream.status
        headers = {k: v for k, v in upstream.headers.items() if not is_rate_limit_header(k)}
        headers.update(account.headers)
        self.headers = headers
        self.final = False
        self._mode: str | None
        if not 200 <= upstream.status < 300:
            self._mode = None  # an error answer: no tokens were spent
        elif upstream.headers.get("content-type", "").lower().startswith("text/event-stream"):
            self._mode = "strip" if strip else "sse"
        else:
            self._mode = "json"  # a JSON answer, or Gemini's streamed JSON array

    def aiter_bytes(self) -> AsyncIterator[bytes]:
        body = self._upstream.aiter_bytes()
        if self._mode is None:
            return body
        return MeteredStream(body, self._account, self._mode)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.aiter_bytes()])

    async def aclose(self) -> None:
        try:
            await self._upstream.aclose()
        finally:
            if self.final:
                # An error answer spent no tokens; a success's unread rest is estimated.
                await self._account.finish(Usage() if self._mode is None else None)
