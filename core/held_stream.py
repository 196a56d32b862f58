"""A translated stream held back until its first content.

An upstream can accept a request (200) and fail a moment later: Anthropic sends
``message_start`` then ``event: error`` (``overloaded_error``); a connection can drop before any
text. Until the first content delta the client has been sent nothing, so that failure can still be
retried or fall back. ``hold`` reads and translates until the OpenAI frames hold more than the
opening role chunk, and says which it was: content (release everything held, go on streaming), or
a failure (close the upstream, decide as for an error status).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import NamedTuple

from . import safejson
from .errors import GatewayError
from .fetch import Body, FetchError
from .providers.base import StreamTranslator
from .retry import Attempt
from .sse import EventTooLarge

# An OpenAI error chunk's `type` -> the status it stands for (what the retry policy reads).
_TYPE_STATUS = {
    "invalid_request_error": 400,
    "authentication_error": 401,
    "permission_error": 403,
    "not_found_error": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "api_error": 500,
    "timeout_error": 504,
    "overloaded_error": 529,
    "insufficient_quota": 429,
}


class Opened(NamedTuple):
    """Content arrived: ``held`` goes to the client first (as the pieces it was translated
    in, so the client's chunks stay one per upstream event), then the rest of ``chunks``."""

    held: list[bytes]
    chunks: AsyncIterator[bytes]
    ended: bool  # the upstream body is already over (``held`` ends the stream)


class Failed(NamedTuple):
    """The stream failed before any content: nothing has reached the client."""

    attempt: Attempt
    error: GatewayError


async def hold(upstream: Body, translator: StreamTranslator) -> Opened | Failed:
    """Read ``upstream`` through ``translator`` until the first content or a failure."""
    chunks = upstream.aiter_bytes().__aiter__()
    pieces: list[bytes] = []
    held = b""
    while True:
        try:
            chunk = await chunks.__anext__()
        except StopAsyncIteration:
            out = translator.finish()
            held += out
            pieces.append(out)
            failed = _failure(held)
            return failed if failed is not None else Opened(pieces, chunks, True)
        except FetchError as exc:
            error = GatewayError(
                504 if exc.timeout else 502,
                f"The upstream stream broke off before any content: {exc}",
                code="timeout" if exc.timeout else "bad_gateway",
            )
            return Failed(Attempt(None, error="timeout" if exc.timeout else "broken"), error)
        try:
            out = translator.feed(chunk)
        except EventTooLarge as exc:
            # The same event would come again on a retry: the answer is opened and ends with
            # the stream's terminal error, as an oversized event later in the stream does.
            return Opened(pieces, _raise(exc), False)
        if not out:
            continue
        held += out
        pieces.append(out)
        failed = _failure(held)
        if failed is not None:
            return failed
        if _frames(held) >= 2:
            return Opened(pieces, chunks, False)


def _frames(held: bytes) -> int:
    """Complete data frames (comments such as ``: ping`` do not count)."""
    return sum(1 for frame in held.split(b"\n\n")[:-1] if frame.startswith(b"data: "))


def _failure(held: bytes) -> Failed | None:
    """The first error chunk, if it came before any content frame (the role chunk aside)."""
    seen = 0
    for frame in held.split(b"\n\n")[:-1]:
        if not frame.startswith(b"data: "):
            continue
        seen += 1
        if frame.startswith(b'data: {"error"'):
            return _failed(frame[6:])
        if seen >= 2:
            return None
    return None


def _failed(data: bytes) -> Failed:
    try:
        error = safejson.loads(data).get("error")
    except (ValueError, AttributeError, UnicodeDecodeError, RecursionError):
        error = None
    error = error if isinstance(error, dict) else {}
    kind = error.get("type") if isinstance(error.get("type"), str) else None
    code = error.get("code")
    status = code if isinstance(code, int) and 400 <= code <= 599 else None
    status = status or _TYPE_STATUS.get(kind or "", 502)
    message = error.get("message")
    if not isinstance(message, str) or not message:
        message = "The upstream stream failed before any content."
    # Anthropic's 529 "overloaded" goes to OpenAI clients as 503, as on the JSON path.
    shown = 503 if status == 529 else status
    gateway_error = GatewayError(shown, message, type=kind)
    return Failed(Attempt(status, {}, data), gateway_error)


async def _raise(exc: Exception) -> AsyncIterator[bytes]:
    raise exc
    yield b""  # an async generator: the error comes on the first read
