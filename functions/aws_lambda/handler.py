"""The buffered Lambda handler: ``handler(event, context)`` for API Gateway HTTP APIs (payload
2.0), REST APIs (payload 1.0) and BUFFERED Function URLs.

Lambda returns the whole response at once here, so a streamed chat completion arrives as one
``text/event-stream`` body with every event in it. Limits that apply: 6 MB of response and, behind
API Gateway, about 29 s. For real streaming use the streaming loop (``stream_loop.py``).

One event loop and one gateway (so one httpx client and its connection pool) live for the whole
process: warm invocations reuse them. A bad setting answers every request with a 503 naming it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from edgerelay.core import ConfigError, GatewayError, Response, config_error, error_response
from edgerelay.core.fetch import Fetch
from edgerelay.core.requestlog import with_request_id

from .app import LambdaApp, create_app
from .events import EventError, HttpEvent, decode_event, proxy_response
from .limits import Cut, limits_for, time_cut
from .pump import pump
from .request_log import write_log

log = logging.getLogger("edgerelay")

# Lambda's buffered response limit is 6 MB for the whole JSON document; keep the body well below
# it so JSON escaping or base64 never pushes it over.
MAX_BUFFERED_BYTES = 4 * 1024 * 1024


class BufferedHandler:
    """``handler(event, context) -> dict``, with its own event loop and gateway for the process."""

    def __init__(self, app: LambdaApp | ConfigError) -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, fetch: Fetch | None = None):
        try:
            return cls(create_app(env, fetch))
        except ConfigError as exc:
            log.error("%s", config_error(exc).message)
            return cls(exc)

    def __call__(self, event: object, context: object) -> dict:
        try:
            decoded = decode_event(event)
        except EventError as exc:
            # Not from API Gateway or a Function URL (a direct test invoke, say): a clear 400.
            return proxy_response("2.0", *_as_parts(error_response(GatewayError(400, str(exc)))))
        if isinstance(self.app, ConfigError):
            error = config_error(self.app)
            return proxy_response(decoded.version, *_as_parts(error_response(error)))
        remaining = _remaining_seconds(context)
        return self.loop.run_until_complete(_handle(self.app, decoded, remaining))

    def close(self) -> None:
        if not isinstance(self.app, ConfigError):
            self.loop.run_until_complete(self.app.fetch.aclose())
        self.loop.close()


_default: BufferedHandler | None = None


def handler(event: object, context: object) -> dict:
    """The Lambda entry point (``functions/aws_lambda/handler.handler``)."""
    global _default
    if _default is None:
        _default = BufferedHandler.from_env()
    return _default(event, context)


def _remaining_seconds(context: object) -> float | None:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        return remaining() / 1000
    except Exception:  # a stand-in context: no deadline known
        return None


# API Gateway gives up on a buffered integration after 29 s: retries past it are wasted.
API_GATEWAY_SECONDS = 29.0


async def _handle(app: LambdaApp, event: HttpEvent, remaining: float | None) -> dict:
    loop = asyncio.get_running_loop()
    limits = limits_for(app.settings, remaining=remaining, loop=loop)
    # The retry deadline: the smallest of the total timeout (applied in core), the
    # invocation's remaining time (less the margin) and API Gateway's 29 s.
    seconds = min(API_GATEWAY_SECONDS, limits.stop_at - loop.time())
    deadline = app.gateway.clock() + seconds
    if event.error is not None:
        response = error_response(event.error)
        app.gateway.logged(event.request, response)
    else:
        try:
            async with asyncio.timeout_at(limits.stop_at):
                response = await app.gateway.handle(event.request, deadline=deadline)
        except TimeoutError:
            response = error_response(time_cut(limits, app.settings).error)
            app.gateway.logged(event.request, response)
    sink = _Collected()
    try:
        outcome = await pump(
            response,
            sink,
            limits,
            app.settings,
            max_bytes=MAX_BUFFERED_BYTES,
            size_cut=_too_large_to_buffer(),
        )
    finally:
        await response.aclose()
    answer = outcome.response
    body = b"".join(sink.parts)
    write_log(response.log, app.gateway, len(body), answer.status, sink.first)
    return proxy_response(event.version, answer.status, with_request_id(answer), body)


class _Collected:
    """The buffered function's sink: the whole body, returned at once. Until then the answer
    can still be replaced by an error response."""

    replaceable = True

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.first: float | None = None  # when the first body byte was read (for the log)

    async def start(self, response: Response) -> None:
        self.parts = []

    async def write(self, chunk: bytes) -> None:
        if chunk and self.first is None:
            self.first = time.time()
        self.parts.append(chunk)


def _too_large_to_buffer() -> Cut:
    error = GatewayError(
        502,
        "The response is larger than a buffered Lambda can return "
        f"({MAX_BUFFERED_BYTES} bytes); use the streaming function.",
        code="response_too_large",
    )
    return Cut(error, trailer_type="Edgerelay.ResponseTooLarge")


def _as_parts(response: Response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status, response.headers, response.body
