"""Which response-cache store a process uses, from ``EDGERELAY_STORE`` (the setting the limits
read too): ``redis://…`` / ``rediss://…`` (shared by every process and instance), else this
process's memory (``EDGERELAY_CACHE_MAX_BYTES``; on Lambda that is per warm instance). Only
built when the cache is on somewhere or an admin key is set."""

from __future__ import annotations

from collections.abc import Mapping

from edgerelay.core import Config
from edgerelay.stores.select import redis_url


def cache_store_for(config: Config, env: Mapping[str, str]):
    """The store, or None when the cache is not in use (the gateway then needs none)."""
    settings = config.cache
    if settings is None or not (settings.enabled or settings.admin_key):
        return None
    url = redis_url(env)
    if url is not None:
        from edgerelay.stores.redis_cache import RedisCacheStore

        return RedisCacheStore.from_url(url, timeout=config.store_timeout)
    from edgerelay.core.cache import MemoryCacheStore

    return MemoryCacheStore(settings.max_bytes)
