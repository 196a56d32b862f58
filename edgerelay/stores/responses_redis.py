"""Stored ``/v1/responses`` answers on Redis (``EDGERELAY_STORE=redis://…``), so a
``previous_response_id`` or an ``item_reference`` resolves in every gateway process and Lambda
instance, not only in the one that answered.

One Redis string per record, written with its time to live (``SET … PX``), read with one
``GET``: a reference resolves as soon as the answer was kept. Keys carry the client namespace in
a hash tag (``{…}``), so one client's records share a Redis Cluster slot. Redis bounds the
total (``maxmemory``); a single record larger than ``EDGERELAY_RESPONSES_MAX_BYTES`` is not
kept, as in the memory store.
"""

from __future__ import annotations

import math

import redis.asyncio as aioredis

from edgerelay.core.responses_api.store import StoreUnavailable
from edgerelay.stores.redis_client import FAILURES, bounded, client_for, describe

PREFIX = "edgerelay:responses:"


class RedisResponseStore:
    """``ResponseStore`` over redis-py's asyncio client. Build it once per process."""

    def __init__(self, client: aioredis.Redis, max_value_bytes: int, timeout: float = 1.0) -> None:
        self.client = client
        self.max_value_bytes = max_value_bytes
        self.timeout = timeout  # a reference that cannot be read in time is a 503 at once

    @classmethod
    def from_url(
        cls, url: str, *, max_value_bytes: int, timeout: float = 1.0
    ) -> RedisResponseStore:
        return cls(client_for(url, timeout), max_value_bytes, timeout)

    async def get(self, namespace: str, key: str) -> bytes | None:
        try:
            value = await bounded(self.client.get(_key(namespace, key)), self.timeout)
        except FAILURES as exc:
            raise StoreUnavailable(describe(exc)) from None
        return value.encode() if isinstance(value, str) else value  # bytes unless decoding

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_value_bytes:
            return  # as the memory store: larger than the bound, not kept
        try:
            ttl_ms = max(1, math.ceil(ttl * 1000))
            await bounded(self.client.set(_key(namespace, key), value, px=ttl_ms), self.timeout)
        except FAILURES as exc:
            raise StoreUnavailable(describe(exc)) from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _key(namespace: str, key: str) -> str:
    return f"{PREFIX}{{{namespace}}}:{key}"
