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
from collections.abc import Mapping

from edgerelay.core import ConfigError, GatewayError, Response, error_response
from edgerelay.core.errors import stream_error_frame
from edgerelay.core.fetch import Fetch, FetchError

from .app import LambdaApp, create_app
from .events import EventError, HttpEvent, decode_event, proxy_response
from .framing import EventAligner
from .limits import Expired, Limits, is_text_event_stream, limits_for, pull, time_cut

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
            log.error("bad configuration: %s", exc)
            return cls(exc)

    def __call__(self, event: object, context: object) -> dict:
        try:
            decoded = decode_event(event)
        except EventError as exc:
            # Not from API Gateway or a Function URL (a direct test invoke, say): a clear 400.
            return proxy_response("2.0", *_as_parts(error_response(GatewayError(400, str(exc)))))
        if isinstance(self.app, ConfigError):
            error = GatewayError(
                503,
                f"The gateway is misconfigured: check the setting {self.app.setting}.",
                type="service_unavailable",
                code="bad_configuration",
            )
            return proxy_response(decoded.version, *_as_parts(error_response(error)))
        remaining = _remaining_seconds(context)
        return self.loop.run_until_complete(_handle(self.app, decoded, remaining))

    def close(self) -> None:
        if not isinstance(self.app, ConfigError):
            close = getattr(self.app.fetch, "aclose", None)
            if close is not None:
                self.loop.run_until_complete(close())
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


async def _handle(app: LambdaApp, event: HttpEvent, remaining: float | None) -> dict:
    limits = limits_for(app.settings, remaining=remaining, loop=asyncio.get_running_loop())
    if event.error is not None:
        response = error_response(event.error)
    else:
        try:
            async with asyncio.timeout_at(limits.stop_at):
                response = await app.gateway.handle(event.request)
        except TimeoutError:
            response = error_response(time_cut(limits, app.settings).error)
    try:
        status, headers, body = await _collect(app, response, limits)
    finally:
        await response.aclose()
    return proxy_response(event.version, status, headers, body)


async def _collect(
    app: LambdaApp, response: Response, limits: Limits
) -> tuple[int, list[tuple[str, str]], bytes]:
    """Read the whole body within the limits. An event stream that cannot finish keeps what it
    had and ends with an SSE error event; any other body becomes an error response."""
    if response.stream is None:
        return response.status, response.headers, response.body
    sse = is_text_event_stream(response.headers)
    aligner = EventAligner() if sse else None
    parts: list[bytes] = []
    size = 0
    iterator = aiter(response.stream)
    error: GatewayError | None = None
    while True:
        try:
            chunk = await pull(iterator, limits)
        except Expired:
            error = time_cut(limits, app.settings).error
            break
        except FetchError as exc:
            error = GatewayError(502, f"The upstream stream broke off: {exc}", code="bad_gateway")
            break
        except Exception:
            log.exception("response body failed")
            error = GatewayError(500, "Internal gateway error.", type="api_error")
            break
        if chunk is None:
            break
        size += len(chunk)
        if size > MAX_BUFFERED_BYTES:
            error = GatewayError(
                502,
                "The response is larger than a buffered Lambda can return "
                f"({MAX_BUFFERED_BYTES} bytes); use the streaming function.",
                code="response_too_large",
            )
            break
        parts.append(aligner.feed(chunk) if aligner is not None else chunk)
    if error is None:
        if aligner is not None:
            parts.append(aligner.flush())
        return response.status, response.headers, b"".join(parts)
    await response.aclose()
    if aligner is not None:
        aligner.drop()
        parts.append(stream_error_frame(error))
        return response.status, response.headers, b"".join(parts)
    return _as_parts(error_response(error))


def _as_parts(response: Response) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status, response.headers, response.body
