"""How long and how much one response may take, and reading a body within that.

Each invocation gets a stop time: Lambda's deadline less the configured margin, or the
configured stream duration cap, whichever comes first. Reads past it end with ``Cut``, so the
adapters can stop the upstream and still end their response properly before Lambda kills them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

from edgerelay.core import GatewayError

from .settings import LambdaSettings


@dataclass(frozen=True, slots=True)
class Limits:
    stop_at: float  # in the event loop's clock (loop.time())
    reason: str  # "deadline" or "duration": which limit stop_at comes from
    max_bytes: int


class Cut(Exception):
    """A limit was reached; ``error`` says which, in the client's error format."""

    def __init__(self, error: GatewayError, *, trailer_type: str) -> None:
        super().__init__(error.message)
        self.error = error
        self.trailer_type = trailer_type


def limits_for(
    settings: LambdaSettings, *, remaining: float | None, loop: asyncio.AbstractEventLoop
) -> Limits:
    """``remaining``: seconds until Lambda's deadline (None when unknown)."""
    now = loop.time()
    stop_at, reason = now + settings.max_stream_seconds, "duration"
    if remaining is not None and now + remaining - settings.deadline_margin < stop_at:
        stop_at, reason = now + remaining - settings.deadline_margin, "deadline"
    return Limits(stop_at, reason, settings.max_stream_bytes)


def time_cut(limits: Limits, settings: LambdaSettings) -> Cut:
    if limits.reason == "deadline":
        error = GatewayError(
            504,
            "The response was ended at the function's time limit.",
            code="timeout",
        )
        return Cut(error, trailer_type="Edgerelay.Deadline")
    error = GatewayError(
        504,
        "The response reached EDGERELAY_MAX_STREAM_SECONDS "
        f"({settings.max_stream_seconds:g} s) and was ended.",
        code="stream_time_limit",
    )
    return Cut(error, trailer_type="Edgerelay.StreamTimeLimit")


def size_cut(settings: LambdaSettings) -> Cut:
    error = GatewayError(
        502,
        f"The response reached EDGERELAY_MAX_STREAM_BYTES ({settings.max_stream_bytes} bytes) "
        "and was ended.",
        code="stream_size_limit",
    )
    return Cut(error, trailer_type="Edgerelay.StreamSizeLimit")


async def pull(iterator: AsyncIterator[bytes], limits: Limits) -> bytes | None:
    """The next body chunk, None at the end; raises ``Expired`` at the stop time (the caller
    turns it into a ``Cut``) and whatever the body itself raises (``FetchError``)."""
    guard = asyncio.timeout_at(limits.stop_at)
    try:
        async with guard:
            return await anext(iterator)
    except StopAsyncIteration:
        return None
    except TimeoutError:
        if guard.expired():
            raise Expired from None
        raise


class Expired(TimeoutError):
    """The stop time came, as opposed to a TimeoutError raised by the body's own code."""
