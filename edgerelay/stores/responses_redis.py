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
from collections.abc import Mapping

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from edgerelay.core import Config, ConfigError
from edgerelay.core.responses_api.store import ResponseStore, StoreUnavailable
from edgerelay.stores.redis_store import _describe

PREFIX = "edgerelay:responses:"


class RedisResponseStore:
    """``ResponseStore`` over redis-py's asyncio client. Build it once per process."""

    def __init__(self, client: aioredis.Redis, max_value_bytes: int) -> None:
        self.client = client
        self.max_value_bytes = max_value_bytes

    @classmethod
    def from_url(
        cls, url: str, *, max_value_bytes: int, timeout: float = 1.0
    ) -> RedisResponseStore:
        client = aioredis.Redis.from_url(
            url,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            health_check_interval=30,
            retry_on_timeout=False,  # a reference that cannot be read is a 503 at once
        )
        return cls(client, max_value_bytes)

    async def get(self, namespace: str, key: str) -> bytes | None:
        try:
            value = await self.client.get(_key(namespace, key))
        except (RedisError, OSError, ValueError) as exc:
            raise StoreUnavailable(_describe(exc)) from None
        return value.encode() if isinstance(value, str) else value  # bytes unless decoding

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_value_bytes:
            return  # as the memory store: larger than the bound, not kept
        try:
            await self.client.set(_key(namespace, key), value, px=max(1, math.ceil(ttl * 1000)))
        except (RedisError, OSError, ValueError) as exc:
            raise StoreUnavailable(_describe(exc)) from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _key(namespace: str, key: str) -> str:
    return f"{PREFIX}{{{namespace}}}:{key}"


def response_store_for(config: Config, env: Mapping[str, str]) -> ResponseStore | None:
    """The store ``EDGERELAY_STORE`` names for stored responses: Redis for ``redis://``,
    ``rediss://`` or ``unix://``; None (the gateway's own memory store) when unset or
    ``memory``. Anything else raises ``ConfigError`` naming the setting (never its value)."""
    setting = (env.get("EDGERELAY_STORE") or "").strip()
    if setting in ("", "memory"):
        return None
    if setting.startswith(("redis://", "rediss://", "unix://")):
        return RedisResponseStore.from_url(
            setting, max_value_bytes=config.responses_max_bytes, timeout=config.store_timeout
        )
    raise ConfigError("EDGERELAY_STORE", "must be memory, redis://… or rediss://…")
