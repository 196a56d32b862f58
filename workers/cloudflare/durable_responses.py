"""Stored ``/v1/responses`` answers in a Durable Object, so a ``previous_response_id`` or an
``item_reference`` resolves from any isolate, at once (KV is eventually consistent: a reference
sent right after the answer could miss it; isolate memory is seen by one isolate only).

The objects are the ``EDGERELAY_LIMITS`` binding's (``EdgerelayLimits``, limits_object.py): one
object per client namespace, named ``responses:<namespace>``, holding that client's records in
its SQLite storage with their expiry. ``DurableResponseStore`` is core's ``ResponseStore`` on
the calling side; the object runs core's ``ResponseRecords`` over ``SqlRows``, and an alarm
deletes what expired (limits_object.py). Calls carry JSON text; a write and its bound run
synchronously (awaiting only the alarm after them), so no other call interleaves with them.

Without the binding nothing is stored (``UnboundResponseStore``): answers still go out, and a
reference is a 503 naming the binding, as limits without it are.
"""

from __future__ import annotations

import json
import time

from edgerelay.core import Config
from edgerelay.core.responses_api.store import ResponseStore, StoreUnavailable

BINDING = "EDGERELAY_LIMITS"
_SETTING = "the EDGERELAY_LIMITS Durable Object binding (wrangler.toml, docs/cloudflare.md)"
# SQLite in a Durable Object holds at most 2 MB in one value: longer records are split into
# parts of this many characters (at most 4 bytes each in UTF-8).
PART_CHARS = 400_000


class DurableResponseStore:
    """``ResponseStore`` over the Durable Object namespace bound as EDGERELAY_LIMITS."""

    def __init__(self, namespace, clock, max_bytes: int) -> None:
        self.namespace = namespace
        self.clock = clock
        self.max_bytes = max_bytes

    async def _call(self, client: str, method: str, payload: dict) -> str:
        try:
            stub = self.namespace.getByName("responses:" + client)
            return str(await getattr(stub, method)(json.dumps(payload)))
        except Exception as exc:  # a JsException from the runtime: the object is unreachable
            reason = f"Durable Object {BINDING}: {type(exc).__name__}"
            raise StoreUnavailable(reason, setting=_SETTING) from None

    async def get(self, namespace: str, key: str) -> bytes | None:
        text = await self._call(namespace, "responses_get", {"key": key, "now": self.clock()})
        return text.encode("utf-8", "surrogatepass") if text else None

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        if len(value) > self.max_bytes:
            return  # as the other stores: larger than the bound, not kept
        now = self.clock()
        payload = {
            "key": key,
            "value": value.decode("utf-8", "surrogatepass"),
            "expires_at": now + ttl,
            "now": now,
            "max_bytes": self.max_bytes,
        }
        await self._call(namespace, "responses_put", payload)


class UnboundResponseStore:
    """No EDGERELAY_LIMITS binding: nothing is kept (said once in the log) and a reference is
    core's 503 ``store_unavailable`` naming the binding. Isolate memory is no fallback: another
    isolate would answer the same reference with an unknown id, now and then."""

    def __init__(self) -> None:
        self.said = False

    async def get(self, namespace: str, key: str) -> bytes | None:
        raise StoreUnavailable(f"this Worker has no {BINDING} binding", setting=_SETTING)

    async def put(self, namespace: str, key: str, value: bytes, ttl: float) -> None:
        if not self.said:
            self.said = True
            print(f"edgerelay: responses: no {BINDING} binding: answers are not stored")


class SqlRows:
    """``Rows`` in the object's SQLite storage (``ctx.storage.sql``): a record in one or more
    parts, each with its size in bytes; the total is read once per object, then kept."""

    def __init__(self, sql) -> None:
        self.sql = sql
        sql.exec(
            "CREATE TABLE IF NOT EXISTS responses (key TEXT NOT NULL, part INTEGER NOT NULL, "
            "value TEXT NOT NULL, size INTEGER NOT NULL, expires_at REAL NOT NULL, "
            "PRIMARY KEY (key, part))"
        )
        sql.exec("CREATE INDEX IF NOT EXISTS responses_expiry ON responses (expires_at)")
        self._size: int | None = None

    def _one(self, query: str, *args) -> int:
        return int(self.sql.exec(query, *args).toArray()[0].n)

    def get(self, key: str, now: float) -> str | None:
        rows = self.sql.exec(
            "SELECT value FROM responses WHERE key = ? AND expires_at > ? ORDER BY part", key, now
        ).toArray()
        return "".join(str(row.value) for row in rows) if len(rows) else None

    def put(self, key: str, value: str, expires_at: float) -> None:
        self._drop("key = ?", key)
        total = self.size()
        for part, start in enumerate(range(0, max(len(value), 1), PART_CHARS)):
            text = value[start : start + PART_CHARS]
            size = len(text.encode("utf-8", "surrogatepass"))
            self.sql.exec(
                "INSERT INTO responses (key, part, value, size, expires_at) VALUES (?, ?, ?, ?, ?)",
                key,
                part,
                text,
                size,
                expires_at,
            )
            total += size
        self._size = total

    def drop_expired(self, now: float) -> None:
        self._drop("expires_at <= ?", now)

    def size(self) -> int:
        if self._size is None:
            self._size = self._one("SELECT COALESCE(SUM(size), 0) AS n FROM responses")
        return self._size

    def drop_oldest(self) -> bool:
        rows = self.sql.exec("SELECT key FROM responses ORDER BY expires_at LIMIT 1").toArray()
        if not len(rows):
            return False
        self._drop("key = ?", str(rows[0].key))
        return True

    def oldest_expiry(self) -> float | None:
        rows = self.sql.exec("SELECT MIN(expires_at) AS n FROM responses").toArray()
        value = rows[0].n if len(rows) else None
        return None if value is None else float(value)

    def _drop(self, where: str, arg) -> None:
        gone = self._one(f"SELECT COALESCE(SUM(size), 0) AS n FROM responses WHERE {where}", arg)
        if gone:
            total = self.size()
            self.sql.exec(f"DELETE FROM responses WHERE {where}", arg)
            self._size = total - gone


def response_store_for(env, config: Config) -> ResponseStore:
    """With EDGERELAY_LIMITS bound, Durable Objects (one per client namespace), so a reference
    resolves from any isolate at once; without it, nothing is stored."""
    namespace = getattr(env, BINDING, None)
    if namespace is None or isinstance(namespace, str):
        return UnboundResponseStore()
    return DurableResponseStore(namespace, time.time, config.responses_max_bytes)
