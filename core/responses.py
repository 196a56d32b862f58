"""Building the responses the gateway sends: its own errors, and upstream bodies passed on."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from .config import ConfigError
from .errors import Flavor, GatewayError
from .fetch import FetchResponse
from .headers import filter_response_headers
from .http import Response
from .observer import Protocol, StreamHook, StreamObserver, observe

JSON = ("content-type", "application/json")
EVENT_STREAM = ("content-type", "text/event-stream; charset=utf-8")


def error_response(error: GatewayError, flavor: Flavor = "openai") -> Response:
    """The gateway's own error, in the error format of the API being spoken."""
    headers = [JSON, *error.headers]
    if error.retry_after is not None and not any(k == "retry-after" for k, _ in headers):
        headers.append(("retry-after", str(max(0, round(error.retry_after)))))
    return Response(error.status, headers, error.render(flavor))


def passthrough(
    upstream: FetchResponse,
    protocol: Protocol | None = None,
    hooks: Sequence[StreamHook] = (),
    max_event_bytes: int | None = None,
    body: AsyncIterator[bytes] | None = None,
) -> Response:
    """The client gets the upstream's status, allowed headers and body bytes unchanged; an
    event stream of ``protocol`` goes through its observer (see ``observed``). ``body``: the
    upstream's chunks as read (by default ``upstream.aiter_bytes()``), e.g. bounded in time."""
    headers = filter_response_headers(upstream.headers)
    stream = body if body is not None else upstream.aiter_bytes()
    response = Response(upstream.status, headers, stream=stream, upstream=upstream)
    if protocol is not None:
        observed(response, protocol, hooks, max_event_bytes)
    return response


def observed(
    response: Response,
    protocol: Protocol,
    hooks: Sequence[StreamHook] = (),
    max_event_bytes: int | None = None,
) -> Response:
    """Put ``response.stream`` through a ``StreamObserver`` of ``protocol``: cut on event
    boundaries, watched for its end marker, ended with the route's terminal error event if it
    breaks off, ends without it or sends an event past ``max_event_bytes``
    (EDGERELAY_MAX_EVENT_BYTES; ``response.failure`` then says why)."""
    assert response.stream is not None
    observer = response.observer = StreamObserver(protocol, hooks, max_event_bytes)

    def failed() -> None:
        response.failure = observer.failure

    response.stream = observe(response.stream, observer, failed)
    return response


def config_error(exc: ConfigError) -> GatewayError:
    """A bad setting, as every target reports it: 503 naming the setting and what is wrong
    with it (never its value: ``ConfigError`` does not quote values, so a misplaced key cannot
    leak). The local server prints the same message and refuses to start."""
    return GatewayError(
        503,
        f"The gateway is not configured correctly: {exc}.",
        type="service_unavailable",
        code="bad_configuration",
    )


def is_event_stream(headers: list[tuple[str, str]]) -> bool:
    """Whether ``headers`` say ``text/event-stream`` (names lower-case, as core writes them)."""
    return any(
        k.lower() == "content-type" and v.lower().startswith("text/event-stream")
        for k, v in headers
    )


def translated_headers(content_type: tuple[str, str], upstream: FetchResponse):
    """Our content type, plus the upstream's request ids and rate-limit headers."""
    kept = [h for h in filter_response_headers(upstream.headers) if not h[0].startswith("content-")]
    return [content_type, *kept]


def too_large(limit: int) -> GatewayError:
    return GatewayError(
        413,
        f"The request body is larger than EDGERELAY_MAX_BODY_BYTES ({limit} bytes).",
        code="request_too_large",
    )


def body_stalled(seconds: float) -> GatewayError:
    # Connection: close, because the rest of the body may still be on its way.
    return GatewayError(
        408,
        f"The request body stalled: nothing arrived for EDGERELAY_BODY_IDLE_TIMEOUT "
        f"({seconds:g} s).",
        code="request_timeout",
        headers=(("connection", "close"),),
    )


def unexpected_status(name: str, status: int) -> GatewayError:
    """An upstream answer that is neither a success nor an error: a 1xx (``101 Switching
    Protocols``) or a 3xx (redirects are not followed). Passed on, it would turn the client's
    connection into something else or point it at a URL the gateway does not control."""
    return GatewayError(
        502, f"The {name} upstream answered with status {status}.", code="bad_gateway"
    )
