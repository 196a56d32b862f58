"""The response cache on Workers KV (binding ``EDGERELAY_CACHE_KV``): entries under
``edgerelay:cache:e:<key>`` with ``expirationTtl`` (at least 60 s, as KV requires; a shorter
lifetime is still refused on read); invalidation bumps a generation under
``edgerelay:cache:g:<namespace>`` (KV cannot delete by prefix); hits and misses are counted per
isolate. Eventual consistency and write limits: docs/cloudflare.md. The binding is used as the
JS object it is, so workerd's KV and a test's fake run the same code."""

from __future__ import annotations

import js
from pyodide.ffi import JsException, to_js

from edgerelay.core.cache import ALL, CacheUnavailable, Entry, stats_answer

PREFIX = "edgerelay:cache:"
KV_MIN_TTL = 60  # seconds: KV refuses a shorter expirationTtl


class KvCacheStore:
    """``CacheStore`` over a KV namespace binding; one per isolate and configuration."""

    def __init__(self, binding) -> None:
        self.kv = getattr(binding, "_binding", binding)  # the JS KVNamespace itself
        self.hits = 0
        self.misses = 0

    async def generations(self, namespace: str) -> tuple[int, int]:
        everything = await self._text(_gen(ALL))
        own = await self._text(_gen(namespace))
        return _int(everything), _int(own)

    async def get(self, key: str, now: float) -> Entry | None:
        try:
            value = await self.kv.get(PREFIX + "e:" + key, "arrayBuffer")
        except JsException as exc:
            raise CacheUnavailable(f"KV: {type(exc).__name__}") from None
        if value is None or not hasattr(value, "to_bytes"):
            return None
        entry = Entry.decode(value.to_bytes())
        return entry if entry is not None and entry.key == key and entry.live(now) else None

    async def put(self, entry: Entry, now: float) -> None:
        ttl = max(KV_MIN_TTL, int(entry.expires - now + 0.999))
        options = to_js({"expirationTtl": ttl}, dict_converter=js.Object.fromEntries)
        await self._call(self.kv.put, PREFIX + "e:" + entry.key, to_js(entry.encode()), options)

    async def delete(self, key: str) -> bool:
        await self._call(self.kv.delete, PREFIX + "e:" + key)
        return True  # KV does not say whether it was there

    async def invalidate(self, namespace: str | None) -> None:
        name = _gen(ALL if namespace is None else namespace)
        # KV has no atomic increment; two racing bumps still leave an unused generation.
        await self._call(self.kv.put, name, str(_int(await self._text(name)) + 1))

    async def count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    async def stats(self) -> dict:
        return stats_answer(self.hits, self.misses, store="kv", counted_by="isolate")

    async def _text(self, name: str):
        return await self._call(self.kv.get, name, "text")

    async def _call(self, method, *args):
        try:
            return await method(*args)
        except JsException as exc:
            raise CacheUnavailable(f"KV: {type(exc).__name__}") from None


def _gen(namespace: str) -> str:
    return PREFIX + "g:" + namespace


def _int(value: object) -> int:
    try:
        return int(str(value)) if value is not None else 0
    except ValueError:
        return 0


def cache_store_for(env, config, clock, keep_alive):
    """The response cache's store on the Worker, or why there is none (then nothing is cached,
    every answer says BYPASS and the log says why once): entries in KV, with the generations and
    counters in the EDGERELAY_LIMITS Durable Object when it is bound (durable_cache.py)."""
    settings = config.cache
    if settings is None or not (settings.enabled or settings.admin_key):
        return None, None
    binding = getattr(env, "EDGERELAY_CACHE_KV", None)
    if binding is None or isinstance(binding, str):
        missing = "no EDGERELAY_CACHE_KV binding: answers are not cached (docs/cloudflare.md)"
        print(f"edgerelay: cache: {missing}")
        return None, missing
    entries = KvCacheStore(binding)
    limits = getattr(env, "EDGERELAY_LIMITS", None)
    if limits is None or isinstance(limits, str):
        return entries, None  # generations in KV, counters per isolate (docs/cloudflare.md)
    from durable_cache import DurableCacheStore

    # Generations and counters in the Durable Object: exact, and seen by every isolate.
    return DurableCacheStore(entries, limits, clock, keep_alive), None
