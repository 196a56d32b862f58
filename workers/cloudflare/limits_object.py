"""The Durable Object that holds one client key's rate-limit counters (binding
``EDGERELAY_LIMITS``, class ``EdgerelayLimits``; wrangler.toml declares both and its migration),
and, in objects of their own, each client's stored /v1/responses answers (durable_responses.py).

Each method is synchronous: the object runs one call at a time and a synchronous method cannot
be interleaved, so read-check-write over its SQLite storage is atomic — the same admission rule
as every store (``admit_on``), over SQL rows instead of a dict.
"""

from __future__ import annotations

import time

from workers import DurableObject

from edgerelay.core.limits import wire
from edgerelay.core.limits.store import adjust_on, admit_on, release_on

# Expired rows are deleted every this many calls (each call touches only its own rows).
_SWEEP_EVERY = 256
# The time an alarm sweeps at (a seam: tests move it).
clock = time.time


class SqlCells:
    """``Cells`` over the object's SQLite storage (``ctx.storage.sql``)."""

    def __init__(self, sql) -> None:
        self.sql = sql
        sql.exec(
            "CREATE TABLE IF NOT EXISTS buckets "
            "(id TEXT PRIMARY KEY, value REAL NOT NULL, expires_at REAL NOT NULL)"
        )
        sql.exec(
            "CREATE TABLE IF NOT EXISTS slots (set_id TEXT NOT NULL, slot_id TEXT NOT NULL, "
            "expires_at REAL NOT NULL, PRIMARY KEY (set_id, slot_id))"
        )
        self._calls = 0

    def value(self, bucket_id: str, now: float) -> float:
        rows = self.sql.exec(
            "SELECT value FROM buckets WHERE id = ? AND expires_at > ?", bucket_id, now
        ).toArray()
        return float(rows[0].value) if len(rows) else 0.0

    def put(self, bucket_id: str, value: float, expires_at: float) -> None:
        self.sql.exec(
            "INSERT INTO buckets (id, value, expires_at) VALUES (?, ?, ?) ON CONFLICT(id) "
            "DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at",
            bucket_id,
            value,
            expires_at,
        )

    def open_slots(self, set_id: str, now: float) -> int:
        self.sql.exec("DELETE FROM slots WHERE set_id = ? AND expires_at <= ?", set_id, now)
        rows = self.sql.exec("SELECT COUNT(*) AS n FROM slots WHERE set_id = ?", set_id).toArray()
        return int(rows[0].n)

    def take_slot(self, set_id: str, slot_id: str, expires_at: float) -> None:
        self.sql.exec(
            "INSERT OR REPLACE INTO slots (set_id, slot_id, expires_at) VALUES (?, ?, ?)",
            set_id,
            slot_id,
            expires_at,
        )

    def give_slot(self, set_id: str, slot_id: str) -> None:
        self.sql.exec("DELETE FROM slots WHERE set_id = ? AND slot_id = ?", set_id, slot_id)

    def sweep(self, now: float) -> None:
        self._calls += 1
        if self._calls % _SWEEP_EVERY == 0:
            self.sql.exec("DELETE FROM buckets WHERE expires_at <= ?", now)
            self.sql.exec("DELETE FROM slots WHERE expires_at <= ?", now)


class LimitsObject:
    """What the Durable Object does, apart from the platform class (tests drive it directly)."""

    def __init__(self, cells) -> None:
        self.cells = cells

    def admit(self, payload: str) -> str:
        counters, slots, now = wire.decode_admit(payload)
        sweep = getattr(self.cells, "sweep", None)
        if sweep is not None:
            sweep(now)
        return wire.encode_answer(admit_on(self.cells, counters, slots, now))

    def adjust(self, payload: str) -> str:
        adjustments, now = wire.decode_adjust(payload)
        adjust_on(self.cells, adjustments, now)
        return "ok"

    def release(self, payload: str) -> str:
        release_on(self.cells, wire.decode_slots(payload))
        return "ok"


class EdgerelayLimits(DurableObject):
    """One object per client key (``EDGERELAY_LIMITS.getByName(key)``); called over RPC."""

    def __init__(self, ctx, env) -> None:
        super().__init__(ctx, env)
        self._limits = LimitsObject(SqlCells(ctx.storage.sql))
        self._storage = ctx.storage
        self._records = None
        self._sweep_at: float | None = None  # the alarm this object has set, as far as it knows
        self._book = None

    def admit(self, payload: str) -> str:
        return self._limits.admit(str(payload))

    def adjust(self, payload: str) -> str:
        return self._limits.adjust(str(payload))

    def release(self, payload: str) -> str:
        return self._limits.release(str(payload))

    # Stored /v1/responses answers (durable_responses.py), in objects named "responses:…".
    # Writing is synchronous up to the alarm: awaiting a storage call lets no other call in.

    def responses_get(self, payload: str) -> str:
        return self._responses().get(str(payload))

    async def responses_put(self, payload: str) -> str:
        answer = self._responses().put(str(payload))
        if self._sweep_at is None:  # the first write this object serves sets the alarm
            await self._set_alarm(self._responses().next_sweep())
        return answer

    async def alarm(self, *_info) -> None:
        """Deletes the expired records of a client who may never write again (only objects
        holding responses set an alarm), and sets the next one while records remain."""
        self._sweep_at = None
        await self._set_alarm(self._responses().sweep(clock()))

    async def _set_alarm(self, at: float | None) -> None:
        if at is not None:
            self._sweep_at = at
            await self._storage.setAlarm(int(at * 1000))

    # The response cache's generations and counters (durable_cache.py), in the object named
    # "cache:bookkeeping".

    def cache_generations(self, payload: str) -> str:
        return self._cache().generations(str(payload))

    def cache_invalidate(self, payload: str) -> str:
        return self._cache().invalidate(str(payload))

    def cache_count(self, payload: str) -> str:
        return self._cache().count(str(payload))

    def cache_stats(self, payload: str) -> str:
        return self._cache().stats(str(payload))

    def _cache(self):
        if self._book is None:
            from durable_cache import CacheBook

            self._book = CacheBook(self._storage.sql)
        return self._book

    def _responses(self):
        if self._records is None:
            from durable_responses import SqlRows

            from edgerelay.core.responses_api.records import ResponseRecords

            self._records = ResponseRecords(SqlRows(self._storage.sql))
        return self._records


def durable_objects_for(env, config, new_id) -> dict:
    """What the EDGERELAY_LIMITS binding gives the Gateway on the Worker (request ids from
    ``new_id`` too). The limit store when limits are configured (isolate memory would bound
    nothing: each request may land on another isolate; without the binding there is none, and
    limited routes answer 503 naming it), and the store of /v1/responses answers (without the
    binding nothing is stored and a reference is a 503 naming it)."""
    from durable_responses import response_store_for

    namespace = getattr(env, "EDGERELAY_LIMITS", None)
    store = None
    if config.limits is not None and namespace is not None:
        from durable_store import DurableObjectStore

        store = DurableObjectStore(namespace)
    return {
        "new_request_id": new_id,
        "limit_store": store,
        "response_store": response_store_for(env, config),
    }
