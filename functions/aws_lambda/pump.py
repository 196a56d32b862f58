"""One pump for both Lambda functions: read core's response body within the invocation's
limits and hand it to a sink (the buffered handler collects it, the streaming loop writes it
to the Runtime API as it comes).

What happens when the body cannot finish is decided here, once:

- nothing has gone out yet (the first read failed, hit the deadline, or is over the size cap),
  or the sink can still replace the whole answer (buffered) and the body is no event stream:
  the answer becomes a plain error response with that status;
- an event stream: core's stream observer ends it with the route's terminal error event (it
  already did, in-band, when the upstream broke off or ended without its end marker); a limit
  reached ends it cleanly, a failure also sets the error trailers;
- any other body already on its way: it is stopped and the trailers say why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from edgerelay.core import GatewayError, Response, error_response
from edgerelay.core.fetch import FetchError
from edgerelay.core.responses import is_event_stream, observed

from .limits import Cut, Expired, Limits, pull, time_cut
from .settings import LambdaSettings

log = logging.getLogger("edgerelay")


class Sink(Protocol):
    """Where the body goes. ``replaceable``: the answer can still be swapped for an error
    response after ``start`` (true while nothing has left the function)."""

    replaceable: bool

    async def start(self, response: Response) -> None:
        """Status and headers are decided (the first chunk follows)."""

    async def write(self, chunk: bytes) -> None:
        """Send ``chunk`` (an empty one only flushes what ``start`` decided)."""


@dataclass(slots=True)
class Outcome:
    """How the body ended: ``response`` is what was answered (an error response when the
    original was replaced); ``error_type`` and ``message`` are for the error trailers."""

    response: Response
    error_type: str | None = None
    message: str = ""


async def pump(
    response: Response,
    sink: Sink,
    limits: Limits,
    settings: LambdaSettings,
    *,
    max_bytes: int,
    size_cut: Cut,
) -> Outcome:
    """Send ``response`` to ``sink``; the caller closes ``response`` afterwards."""
    if response.stream is None:
        await sink.start(response)
        await sink.write(response.body)
        return Outcome(response)
    if response.observer is None and is_event_stream(response.headers):
        observed(response, "chat")  # an event stream core did not label: OpenAI's framing
    iterator = aiter(response.stream)
    started = False
    sent = 0
    while True:
        try:
            chunk = await pull(iterator, limits)
        except Expired:
            return await _cut(response, sink, started, time_cut(limits, settings))
        except Exception as exc:
            return await _fail(response, sink, started, exc)
        if chunk is None:
            break
        if sent + len(chunk) > max_bytes:
            return await _cut(response, sink, started, size_cut)
        if not started:
            await sink.start(response)
            started = True
        await sink.write(chunk)  # sinks skip empty chunks (but send the prelude)
        sent += len(chunk)
    if not started:
        await sink.start(response)
        await sink.write(b"")
    # The upstream broke off, or ended without its end marker: core already sent the
    # terminal error event; the trailers flag it too.
    failure = response.failure
    if failure is not None:
        return Outcome(response, "Edgerelay.UpstreamError", str(failure))
    return Outcome(response)


async def _cut(response: Response, sink: Sink, started: bool, cut: Cut) -> Outcome:
    """A limit was reached: stop the upstream; an event stream gets its terminal error event
    and a clean end, any other body can only be flagged in the trailers."""
    log.warning("%s", cut.error.message)
    if not started or (response.observer is None and sink.replaceable):
        await response.aclose()
        return await _replace(sink, cut.error, response)
    last = response.end_with(cut.error)  # first: closing the stream tells its observer
    await response.aclose()
    if response.observer is not None:
        if last:
            await sink.write(last)
        return Outcome(response)
    return Outcome(response, cut.trailer_type, cut.error.message)


async def _fail(response: Response, sink: Sink, started: bool, exc: Exception) -> Outcome:
    """The body raised: error event (event streams), then the trailers."""
    if isinstance(exc, FetchError):
        kind = "Edgerelay.UpstreamError"
        if exc.timeout:
            error = GatewayError(504, "The upstream did not answer in time.", code="timeout")
        else:
            error = GatewayError(502, f"The upstream stream broke off: {exc}", code="bad_gateway")
    else:
        log.error("response body failed: %s", type(exc).__name__, exc_info=exc)
        kind = "Edgerelay.InternalError"
        error = GatewayError(500, "Internal gateway error.", type="api_error")
    if not started or (response.observer is None and sink.replaceable):
        await response.aclose()
        return await _replace(sink, error, response)
    last = response.end_with(error)  # first: closing the stream tells its observer
    await response.aclose()
    if last:
        await sink.write(last)
    return Outcome(response, kind, error.message)


async def _replace(sink: Sink, error: GatewayError, replaced: Response) -> Outcome:
    answer = error_response(error)
    answer.log = replaced.log  # the request's log record (and its request id) go with it
    await sink.start(answer)
    await sink.write(answer.body)
    return Outcome(answer)
