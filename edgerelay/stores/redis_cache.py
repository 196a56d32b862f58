"""The response cache on Redis (the same ``EDGERELAY_STORE`` as the limits): entries shared by
every gateway process, expired by Redis itself.

Keys: ``edgerelay:cache:e:<key>`` holds an entry (``Entry.encode``) with its TTL;
``edgerelay:cache:g:<namespace>`` a namespace's generation and ``edgerelay:cache:g:*``
everyone's (invalidation increments one: the keys of older entries are never asked for again,
and Redis drops the entries when their TTL ends); ``edgerelay:cache:hits`` and ``:misses``
the counters for ``GET /v1/cache/stats``. Redis does not say how many entries or bytes the
cache holds without a scan, so the stats leave those out.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from edgerelay.core.cache import ALL, CacheUnavailable, Entry, stats_answer
from edgerelay.stores.redis_client import FAILURES, bounded, client_for

PREFIX = "edgerelay:cache:"


class RedisCacheStore:
    """``CacheStore`` over redis-py's asyncio client; build it once per process."""

    def __init__(self, client: aioredis.Redis, timeout: float = 1.0) -> None:
        self.client = client
        self.timeout = timeout  # a cache that is slow to answer is skipped, not waited on

    @classmethod
    def from_url(cls, url: str, *, timeout: float = 1.0) -> RedisCacheStore:
        return cls(client_for(url, timeout), timeout)

    async def generations(self, namespace: str) -> tuple[int, int]:
        values = await self._call(self.client.mget, _gen(ALL), _gen(namespace))
        return _int(values[0]), _int(values[1])

    async def get(self, key: str, now: float) -> Entry | None:
        data = await self._call(self.client.get, PREFIX + "e:" + key)
        if data is None:
            return None
        entry = Entry.decode(data)
        return entry if entry is not None and entry.key == key and entry.live(now) else None

    async def put(self, entry: Entry, now: float) -> None:
        # Relative TTL: Redis's clock and ours need not agree.
        ttl_ms = max(1, math.ceil((entry.expires - now) * 1000))
        await self._call(self.client.set, PREFIX + "e:" + entry.key, entry.encode(), px=ttl_ms)

    async def delete(self, key: str) -> bool:
        return bool(await self._call(self.client.delete, PREFIX + "e:" + key))

    async def invalidate(self, namespace: str | None) -> None:
        await self._call(self.client.incr, _gen(ALL if namespace is None else namespace))

    async def count(self, hit: bool) -> None:
        await self._call(self.client.incr, PREFIX + ("hits" if hit else "misses"))

    async def stats(self) -> dict:
        hits, misses = await self._call(self.client.mget, PREFIX + "hits", PREFIX + "misses")
        return stats_answer(_int(hits), _int(misses), store="redis")

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _call(self, method, *args, **options):
        try:
            return await bounded(method(*args, **options), self.timeout)
        except FAILURES as exc:
            # The class name says what failed; never the URL, which may hold a password.
            raise CacheUnavailable(f"Redis: {type(exc).__name__}") from None


def _gen(namespace: str) -> str:
    return PREFIX + "g:" + namespace


def _int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]  # bytes or None from Redis
    except (TypeError, ValueError):
        return 0
