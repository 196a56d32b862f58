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
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, RedisError

# hiredis's command packer, or None: redis-py's own calls (tests set it to None). hiredis is
# redis-py's C companion (the edgerelay[redis] extra); redis-py works without it.
pack_command: Any = None
try:
    from hiredis import pack_command
except ImportError:  # pragma: no cover - installed wherever the tests run
    pass

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


class Connections:
    """Connections of a client's pool, the idle ones kept at hand between calls: taking one
    from redis-py's pool and giving it back costs more than the script call's own work there
    (a lock, events and metrics each way). Each connection still carries one call at a time;
    more are taken from the pool as calls overlap, and past ``keep`` idle ones they go back."""

    def __init__(self, client: aioredis.Redis, keep: int = 64) -> None:
        self.pool = client.connection_pool
        self.keep = keep
        self.idle: list = []

    async def take(self):
        return self.idle.pop() if self.idle else await self.pool.get_connection()

    async def give(self, connection) -> None:
        if len(self.idle) < self.keep and not connection.should_reconnect():
            self.idle.append(connection)  # a dropped one connects again when next used
        else:
            await self.pool.release(connection)


class Script:
    """A Lua script, called as one ``EVALSHA`` packed by hiredis on a kept connection. Per call
    this skips what redis-py's own ``Script`` call adds around the same round trip: its
    Python command packing (~60 µs for an admission's 27 arguments on a slow machine), the pool
    and its retry and metrics wrappers. Anything out of the ordinary — the server lost its
    scripts, no hiredis — goes through redis-py's own call, which loads the script; a kept
    connection the server closed is connected again once."""

    def __init__(self, client: aioredis.Redis, text: str, connections: Connections) -> None:
        self.script = client.register_script(text)
        self.connections = connections

    async def __call__(self, keys: list[str], args: list) -> Any:
        if pack_command is None:
            return await self.script(keys=keys, args=args)
        packed = pack_command(("EVALSHA", self.script.sha, len(keys), *keys, *args))
        connection = await self.connections.take()
        try:
            try:
                await connection.send_packed_command(packed)
                return await connection.read_response()
            except RedisConnectionError:
                # A kept connection the server closed (a restart, an idle timeout): redis-py
                # has dropped it; sending again connects anew. A second failure is an answer.
                await connection.send_packed_command(packed)
                return await connection.read_response()
        except NoScriptError:
            pass  # the server lost its scripts (a restart, SCRIPT FLUSH): redis-py loads it
        finally:
            await self.connections.give(connection)
        return await self.script(keys=keys, args=args)


def describe(exc: BaseException) -> str:
    """What failed, for an error message: the class name and message, never the URL (it may
    hold a password)."""
    if isinstance(exc, TimeoutError):
        return "Redis: no answer in time (EDGERELAY_STORE_TIMEOUT)"
    text = str(exc).split(" to ", 1)[0] if "Error" in type(exc).__name__ else ""
    return f"Redis: {type(exc).__name__}" + (f": {text}" if text and "@" not in text else "")
