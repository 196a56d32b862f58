"""One upstream request under the retry policy, its answer relayed as it is: what a passthrough
route does (the attempt loop of ``core.attempts`` does the same per target of a chat chain, then
translates). Everything here happens before the client has been sent a byte.

An error status that is retried is read (a bounded excerpt, for the policy: Retry-After,
``retry-after-ms``, Gemini's ``RetryInfo``, a spent quota) and dropped; the last one reaches
the client unchanged, the excerpt first and then the rest of its body. Waits go through the
injected ``sleep``, time through the injected ``clock``: sans-IO like the rest of core.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NamedTuple

from .chains import Timeouts
from .errors import GatewayError, unreachable
from .fetch import SHARED_CALLS, Fetch, FetchError, FetchRequest, FetchResponse
from .retry import Attempt, NextTarget, RetryPolicy, Wait

# Read at most this much of an upstream error body: it is only for the message and the policy.
ERROR_BODY_LIMIT = 64 * 1024

# What the client is told about the attempts behind an answer (exposed through CORS).
ATTEMPTS_HEADER = "x-edgerelay-attempts"  # upstream requests made
TARGET_HEADER = "x-edgerelay-target"  # the provider/model that answered


class Seams(NamedTuple):
    """What a retrying caller needs from outside core."""

    fetch: Fetch
    clock: Callable[[], float]  # wall-clock seconds
    sleep: Callable[[float], Awaitable[None]]
    random: Callable[[], float]  # uniform in [0, 1)
    new_id: Callable[[], str]


def timed(outbound: FetchRequest, timeouts: Timeouts, remaining: float) -> FetchRequest:
    """``outbound`` with the four timeouts, none past the ``remaining`` seconds (and marked
    ``shared`` when sent for many clients: ``SHARED_CALLS``)."""
    return outbound._replace(
        shared=outbound.shared or SHARED_CALLS.get(),
        timeout=min(timeouts.first_byte, remaining),
        connect_timeout=min(timeouts.connect, remaining),
        idle_timeout=timeouts.idle,
        total_timeout=remaining,
    )


def failure_kind(exc: FetchError) -> str:
    """What the policy is told about an upstream that did not answer."""
    return "timeout" if exc.timeout else "connect" if exc.connect else "broken"


def out_of_time(name: str) -> GatewayError:
    return GatewayError(504, f"The {name} upstream did not answer in time.", code="timeout")


def attempt_headers(attempts: int, target: str) -> tuple[tuple[str, str], ...]:
    """``x-edgerelay-attempts`` and ``x-edgerelay-target``; none when no request was made."""
    if not attempts:
        return ()
    return ((ATTEMPTS_HEADER, str(attempts)), (TARGET_HEADER, target))


class Unanswered(GatewayError):
    """No answer was kept from the upstream (it never answered, or time ran out): the error for
    the client, with the number of ``attempts`` made."""

    def __init__(self, error: GatewayError, attempts: int) -> None:
        super().__init__(
            error.status,
            error.message,
            code=error.code,
            param=error.param,
            type=error.type,
            retry_after=error.retry_after,
            headers=error.headers,
        )
        self.attempts = attempts


class MovedOn(Exception):
    """The policy left this target for the next one of a chain, after ``attempts`` attempts
    (its last answer, if any, closed)."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"moved on after {attempts} attempts")
        self.attempts = attempts


class Sent(NamedTuple):
    """The upstream's answer (a success, or the error that was not retried) and the number of
    attempts it took. An error's body is ``ErrorBody`` (read in part already), else None.
    ``stop``: when the whole exchange must be over (``Bounded``)."""

    upstream: FetchResponse
    attempts: int
    error_body: ErrorBody | None
    stop: float = float("inf")


async def send(
    outbound: FetchRequest,
    name: str,
    policy: RetryPolicy,
    timeouts: Timeouts,
    seams: Seams,
    deadline: float | None = None,
    has_next: bool = False,
) -> Sent:
    """Send ``outbound``, again as ``policy`` decides, until an answer is kept; raises
    ``Unanswered`` for an upstream that never answered (502, or 504 on a timeout). With
    ``has_next`` (a chain has another target), raises ``MovedOn`` when the policy says to try
    that one instead."""
    stop = seams.clock() + timeouts.total
    if deadline is not None:
        stop = min(stop, deadline)
    number = 0
    while True:
        number += 1
        remaining = stop - seams.clock()
        if remaining <= 0:
            raise Unanswered(out_of_time(name), number - 1)
        kept: Sent | None = None
        try:
            upstream = await seams.fetch(timed(outbound, timeouts, remaining))
        except FetchError as exc:
            attempt, failure = Attempt(None, error=failure_kind(exc)), unreachable(name, exc)
        else:
            if upstream.status < 400:
                return Sent(upstream, number, None, stop)
            body = await ErrorBody.read(upstream)
            attempt = Attempt(upstream.status, upstream.headers, body.excerpt)
            kept = Sent(upstream, number, body, stop)
        decision = policy.decide(
            attempt,
            number=number,
            now=seams.clock(),
            deadline=stop,
            random=seams.random,
            has_next=has_next,
        )
        if isinstance(decision, NextTarget):
            if kept is not None:
                await kept.upstream.aclose()
            raise MovedOn(number)
        if not isinstance(decision, Wait):
            if kept is None:
                raise Unanswered(failure, number)
            return kept
        if kept is not None:
            await kept.upstream.aclose()  # before waiting
        await seams.sleep(decision.seconds)


class Bounded:
    """Reads ``upstream``'s body until ``stop`` on ``clock`` (the total timeout, or a caller's
    deadline), the body included: a chunk that comes later ends it with a timeout
    ``FetchError``, which the route turns into its terminal error (as for the idle timeout),
    and the caller closes the upstream. Core decides this on its injected clock; each transport
    also bounds a read that stalls past the total timeout in its own time."""

    __slots__ = ("_clock", "_stop", "_upstream")

    def __init__(self, upstream: FetchResponse, stop: float, clock: Callable[[], float]) -> None:
        self._upstream = upstream
        self._stop = stop
        self._clock = clock

    async def aiter_bytes(self) -> AsyncIterator[bytes]:
        chunks = self._upstream.aiter_bytes()
        try:
            async for chunk in chunks:
                if self._clock() >= self._stop:
                    raise FetchError(
                        "the total timeout passed (EDGERELAY_TOTAL_TIMEOUT)", timeout=True
                    )
                yield chunk
        finally:
            close = getattr(chunks, "aclose", None)
            if close is not None:
                await close()


class ErrorBody:
    """An error answer's body: the excerpt read for the policy, then the rest as it comes.
    It stands in for the upstream as ``Response.upstream`` (closing it closes the upstream;
    no native body, since part of it was read here)."""

    __slots__ = ("_chunks", "_done", "_upstream", "excerpt")
    native_body: Any = None

    def __init__(self, upstream: FetchResponse, excerpt: bytes, chunks, done: bool) -> None:
        self._upstream = upstream
        self._chunks = chunks
        self._done = done
        self.excerpt = excerpt

    @classmethod
    async def read(cls, upstream: FetchResponse) -> ErrorBody:
        chunks = upstream.aiter_bytes().__aiter__()
        excerpt, done = b"", False
        try:
            while len(excerpt) < ERROR_BODY_LIMIT:
                excerpt += await chunks.__anext__()
        except StopAsyncIteration:
            done = True
        except FetchError:
            done = True  # what came is all there is: it goes on as it is
        return cls(upstream, excerpt, chunks, done)

    @property
    def status(self) -> int:
        return self._upstream.status

    @property
    def headers(self) -> Mapping[str, str]:
        return self._upstream.headers

    async def stream(self) -> AsyncIterator[bytes]:
        if self.excerpt:
            yield self.excerpt
        if not self._done:
            async for chunk in self._chunks:
                yield chunk

    async def aclose(self) -> None:
        await self._upstream.aclose()
