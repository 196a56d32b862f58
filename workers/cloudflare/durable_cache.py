"""The response cache's bookkeeping in a Durable Object: the generation numbers that
invalidation bumps and the hit and miss counters, in one object of the ``EDGERELAY_LIMITS``
binding (``EdgerelayLimits``, limits_object.py) named ``cache:bookkeeping``; the entries stay in
Workers KV (``KvCacheStore``). KV cannot increment atomically and counting in KV would be a
write per request; the object runs one synchronous call at a time over its SQLite storage, so a
bump or a count is exact and seen by every isolate.

Cheap on the request path:

* Generations are kept per isolate for ``GENERATION_MAX_AGE`` seconds: a lookup asks the object
  at most once per namespace per isolate in that time. An invalidation is seen at once by the
  isolate that made it (it forgets what it kept) and by every other isolate within
  ``GENERATION_MAX_AGE`` seconds (KV itself takes up to ~60 s to show a write elsewhere).
* Hits and misses are added up in the isolate and sent by one task at a time, kept alive with
  the request's ``ctx.waitUntil``; counts made while it is on its way go with its next call. No
  answer waits for them. ``GET /v1/cache/stats`` sends the isolate's own pending counts in the
  same call that reads them, after waiting (bounded) for the one on its way.

Calls carry JSON text, as the limit and response calls do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from edgerelay.core.cache import ALL, CacheUnavailable, Entry, stats_answer

OBJECT = "cache:bookkeeping"  # limit objects are named "ip:…"/"client:…", responses "responses:…"
GENERATION_MAX_AGE = 5.0  # seconds an isolate uses a generation it read
KEPT_NAMESPACES = 4096  # generations an isolate keeps at most (then it starts over)
STATS_WAIT = 5.0  # seconds the stats route waits for counts on their way


class CacheBook:
    """The object's side: generations and counters over ``ctx.storage.sql``."""

    def __init__(self, sql) -> None:
        self.sql = sql
        sql.exec(
            "CREATE TABLE IF NOT EXISTS cache_generations "
            "(namespace TEXT PRIMARY KEY, generation INTEGER NOT NULL)"
        )
        sql.exec(
            "CREATE TABLE IF NOT EXISTS cache_counts "
            "(name TEXT PRIMARY KEY, value INTEGER NOT NULL)"
        )

    def generations(self, payload: str) -> str:
        namespace = str(json.loads(payload)["namespace"])
        return json.dumps([self._generation(ALL), self._generation(namespace)])

    def invalidate(self, payload: str) -> str:
        namespace = json.loads(payload)["namespace"]
        name = ALL if namespace is None else str(namespace)
        self.sql.exec(
            "INSERT INTO cache_generations (namespace, generation) VALUES (?, 1) "
            "ON CONFLICT(namespace) DO UPDATE SET generation = generation + 1",
            name,
        )
        return json.dumps(self._generation(name))

    def count(self, payload: str) -> str:
        self._add(json.loads(payload))
        return "ok"

    def stats(self, payload: str) -> str:
        """Adds the caller's pending counts, then reads the totals: one call."""
        self._add(json.loads(payload))
        rows = self.sql.exec("SELECT name, value FROM cache_counts").toArray()
        totals = {str(row.name): int(row.value) for row in rows}
        return json.dumps({"hits": totals.get("hits", 0), "misses": totals.get("misses", 0)})

    def _generation(self, namespace: str) -> int:
        rows = self.sql.exec(
            "SELECT generation FROM cache_generations WHERE namespace = ?", namespace
        ).toArray()
        return int(rows[0].generation) if len(rows) else 0

    def _add(self, counts: dict) -> None:
        for name in ("hits", "misses"):
            amount = int(counts.get(name) or 0)
            if amount > 0:
                self.sql.exec(
                    "INSERT INTO cache_counts (name, value) VALUES (?, ?) "
                    "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
                    name,
                    amount,
                )


class DurableCacheStore:
    """``CacheStore``: entries through ``entries`` (KV), generations and counters in the
    object. ``keep_alive(task)`` keeps a counting task going after the request that started it
    has finished (the Worker's ``ctx.waitUntil``)."""

    def __init__(
        self,
        entries,
        namespace,
        clock: Callable[[], float],
        keep_alive: Callable[[Any], None] | None = None,
    ) -> None:
        self.entries = entries
        self.namespace = namespace
        self.clock = clock
        self.keep_alive = keep_alive
        self._kept: dict[str, tuple[float, tuple[int, int]]] = {}
        self._pending = {"hits": 0, "misses": 0}
        self._sending: Any = None

    async def _call(self, method: str, payload: dict) -> str:
        try:
            stub = self.namespace.getByName(OBJECT)
            return str(await getattr(stub, method)(json.dumps(payload)))
        except Exception as exc:  # a JsException from the runtime: the object is unreachable
            reason = f"Durable Object EDGERELAY_LIMITS: {type(exc).__name__}"
            raise CacheUnavailable(reason) from None

    async def generations(self, namespace: str) -> tuple[int, int]:
        now = self.clock()
        kept = self._kept.get(namespace)
        if kept is not None and 0 <= now - kept[0] < GENERATION_MAX_AGE:
            return kept[1]
        answer = await self._call("cache_generations", {"namespace": namespace})
        everything, own = json.loads(answer)
        if len(self._kept) >= KEPT_NAMESPACES:
            self._kept.clear()
        pair = (int(everything), int(own))
        self._kept[namespace] = (now, pair)
        return pair

    async def get(self, key: str, now: float) -> Entry | None:
        return await self.entries.get(key, now)

    async def put(self, entry: Entry, now: float) -> None:
        await self.entries.put(entry, now)

    async def delete(self, key: str) -> bool:
        return await self.entries.delete(key)

    async def invalidate(self, namespace: str | None) -> None:
        await self._call("cache_invalidate", {"namespace": namespace})
        self._kept.clear()  # this isolate sees the new generation at once

    async def count(self, hit: bool) -> None:
        self._pending["hits" if hit else "misses"] += 1
        if self._sending is None or self._sending.done():
            import asyncio

            self._sending = asyncio.ensure_future(self._send())
            if self.keep_alive is not None:
                self.keep_alive(self._sending)

    async def _send(self) -> None:
        while self._pending["hits"] or self._pending["misses"]:
            counts, self._pending = self._pending, {"hits": 0, "misses": 0}
            try:
                await self._call("cache_count", counts)
            except CacheUnavailable:
                return  # stats are best effort: these counts are lost, answers are not held up

    async def stats(self) -> dict:
        sending = self._sending
        if sending is not None and not sending.done():
            import asyncio

            # A wait with a timer of this request's own: the task belongs to another request.
            await asyncio.wait((sending,), timeout=STATS_WAIT)
        counts, self._pending = self._pending, {"hits": 0, "misses": 0}
        totals = json.loads(await self._call("cache_stats", counts))
        hits, misses = int(totals["hits"]), int(totals["misses"])
        return stats_answer(hits, misses, store="kv", counted_by="durable object")
