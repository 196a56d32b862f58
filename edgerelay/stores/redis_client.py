"""The one way the Redis stores connect and wait: a redis-py asyncio client per process, each
call bounded by ``EDGERELAY_STORE_TIMEOUT`` around the whole call.

The bound is an ``asyncio.timeout`` here rather than redis-py's ``socket_timeout``: with a
socket timeout redis-py sends every command through ``asyncio.wait_for``, which on Python 3.11
runs it as a task of its own — a few loop turns per command, about a third of an admission's
round trip on loopback. A call cut by the bound leaves redis-py to drop that connection (it
disconnects on any error mid-command), so a late answer is never read by the next call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

T = TypeVar("T")

# What a failed call raises, whatever failed: Redis's own errors, the socket, a bad answer, the
# bound (TimeoutError is an OSError).
FAILURES = (RedisError, OSError, ValueError)


def client_for(url: str, timeout: float) -> aioredis.Redis:
    """A client for ``redis://``, ``rediss://`` or ``unix://`` ``url``; connections are made
    when first used and kept (a Lambda's warm invocations reuse them)."""
    return aioredis.Redis.from_url(
        url,
        socket_timeout=None,  # each call is bounded by ``bounded`` instead (see above)
        socket_connect_timeout=timeout,
        health_check_interval=30,
        # Fail at once: a store that is slow to answer is reported, not waited on again.
        retry_on_timeout=False,
    )


async def bounded(call: Awaitable[T], timeout: float) -> T:
    """``await call``, for at most ``timeout`` seconds (``TimeoutError`` past it)."""
    async with asyncio.timeout(timeout):
        return await call


def describe(exc: BaseException) -> str:
    """What failed, for an error message: the class name and message, never the URL (it may
    hold a password)."""
    if isinstance(exc, TimeoutError):
        return "Redis: no answer in time (EDGERELAY_STORE_TIMEOUT)"
    text = str(exc).split(" to ", 1)[0] if "Error" in type(exc).__name__ else ""
    return f"Redis: {type(exc).__name__}" + (f": {text}" if text and "@" not in text else "")
