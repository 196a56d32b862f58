"""Stand-ins for the Durable Object platform on CPython: ``ctx.storage`` with SQL over sqlite3
(the runtime's 2 MB value limit kept) and its alarm, an awaited stub for RPC, and
``env.EDGERELAY_LIMITS`` holding one real ``EdgerelayLimits`` per name."""

from __future__ import annotations

import asyncio
import inspect
import sqlite3
import types

# A Durable Object's SQLite refuses a string or BLOB over 2 MB (Cloudflare's documented limit).
DO_VALUE_LIMIT = 2_000_000


class SqliteSql:
    """``ctx.storage.sql`` over CPython's sqlite3: ``exec(query, *args).toArray()`` gives rows
    whose columns are attributes, as the runtime's cursor does."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.queries = 0

    def exec(self, query, *args):
        self.queries += 1
        cursor = self.db.execute(query, args)
        names = [d[0] for d in cursor.description or ()]
        rows = [types.SimpleNamespace(**dict(zip(names, r, strict=True))) for r in cursor]
        return types.SimpleNamespace(toArray=lambda: rows)


def database() -> sqlite3.Connection:
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, DO_VALUE_LIMIT)
    return db


class Rpc:
    """A stub: each method call is awaited, as a call to a Durable Object is."""

    def __init__(self, obj, calls):
        self.obj, self.calls = obj, calls

    def __getattr__(self, method):
        async def call(payload):
            self.calls.append(method)
            await asyncio.sleep(0)
            answer = getattr(self.obj, method)(payload)
            return await answer if inspect.isawaitable(answer) else answer

        return call


class Namespace:
    """``env.EDGERELAY_LIMITS``: one real ``EdgerelayLimits`` per name, each on its own
    database (a Durable Object's storage is its own)."""

    def __init__(self, worker):
        self.worker = worker
        self.objects = {}
        self.calls = []

    def getByName(self, name):
        if name not in self.objects:
            self.objects[name] = durable_object(self.worker)
        return Rpc(self.objects[name], self.calls)


class Storage:
    """``ctx.storage``: SQL over sqlite3, and the alarm as set (milliseconds)."""

    def __init__(self, db=None):
        self.sql = SqliteSql(db or database())
        self.alarms = []

    async def setAlarm(self, when_ms):
        await asyncio.sleep(0)
        self.alarms.append(when_ms)


def durable_object(worker, storage=None):
    ctx = types.SimpleNamespace(storage=storage or Storage())
    return worker.limits_object.EdgerelayLimits(ctx, None)
