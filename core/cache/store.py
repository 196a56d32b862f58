"""The one small async interface every cache store implements, and the in-memory store.

A store keeps entries under their key with a lifetime, two generation numbers per namespace
(everything's and the namespace's own: invalidation bumps one, and the key covers both, so old
entries are out of reach at once even where nothing can be deleted by prefix), and the hit and
miss counters for ``GET /v1/cache/stats``. The memory store lives here; Redis and Workers KV
stores live with their targets.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Protocol

from .entry import Entry

ALL = "*"  # the generation that covers every namespace


class CacheUnavailable(Exception):
    """The store could not be reached: the request goes to the upstream uncached (BYPASS)."""


class CacheStore(Protocol):
    """What the gateway needs from a store; every method may raise ``CacheUnavailable``."""

    async def generations(self, namespace: str) -> tuple[int, int]:
        """(everything's generation, ``namespace``'s generation)."""
        ...

    async def get(self, key: str, now: float) -> Entry | None: ...

    async def put(self, entry: Entry, now: float) -> None: ...

    async def delete(self, key: str) -> bool:
        """Forget one entry; whether it was there (where the store can tell)."""
        ...

    async def invalidate(self, namespace: str | None) -> None:
        """Put every entry of ``namespace`` (None: of all namespaces) out of reach."""
        ...

    async def count(self, hit: bool) -> None:
        """One lookup more: a hit or a miss."""
        ...

    async def stats(self) -> dict:
        """``hits``, ``misses`` and, where the store knows them, ``entries`` and ``bytes``."""
        ...


def stats_answer(hits: int, misses: int, **known: int | str) -> dict:
    """The stats object every store answers with."""
    lookups = hits + misses
    rate = round(hits / lookups, 4) if lookups else 0.0
    return {"hits": hits, "misses": misses, "hit_rate": rate, **known}


class MemoryCacheStore:
    """Entries in this process's memory, least recently used first out once they hold more
    than ``max_bytes`` (EDGERELAY_CACHE_MAX_BYTES). The local server's default; per instance
    on serverless targets."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._generations: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    async def generations(self, namespace: str) -> tuple[int, int]:
        return self._generations.get(ALL, 0), self._generations.get(namespace, 0)

    async def get(self, key: str, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not entry.live(now):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    async def put(self, entry: Entry, now: float) -> None:
        if entry.size > self.max_bytes:
            return  # would push out everything else and still not fit
        if entry.key in self._entries:
            self._drop(entry.key)
        self._entries[entry.key] = entry
        self.bytes += entry.size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    async def delete(self, key: str) -> bool:
        if key not in self._entries:
            return False
        self._drop(key)
        return True

    async def invalidate(self, namespace: str | None) -> None:
        name = ALL if namespace is None else namespace
        self._generations[name] = self._generations.get(name, 0) + 1
        # Unreachable now; free their memory too.
        for key in [k for k, e in self._entries.items() if namespace in (None, e.namespace)]:
            self._drop(key)

    async def count(self, hit: bool) -> None:
        if hit:
            self.hits += 1
        else:
            self.misses += 1

    async def stats(self) -> dict:
        return stats_answer(
            self.hits, self.misses, entries=len(self._entries), bytes=self.bytes, store="memory"
        )

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key)
        self.bytes -= entry.size
