"""The response cache's bookkeeping in the Worker's Durable Object, on CPython: the real
``EdgerelayLimits`` object (its ``cache_*`` methods, ``CacheBook`` over CPython's SQLite) reached
over an awaited stand-in for RPC, behind ``DurableCacheStore`` with entries in memory (KV's part
is tested in tests/pyodide/test_cache_kv.py and tests/workerd/test_worker_cache.py): the real
Gateway's MISS, HIT, invalidation and stats go through it; generations are read once per
namespace per isolate within their maximum age, another isolate sees a bump within it; counts
leave off the request path, batched, and the stats route reads them exactly."""

from __future__ import annotations

import asyncio
import json
import time
import types

import pytest

from edgerelay.core import load_config
from edgerelay.core.cache import CacheUnavailable, MemoryCacheStore
from tests.support.cache_calls import CHAT, Clock, call, worker_gateway
from tests.support.cache_calls import cache_status as status_of
from tests.workers.fake_durable import Namespace


def store(worker, namespace, clock, kept=None):
    keep_alive = kept.append if kept is not None else None
    return worker.durable_cache.DurableCacheStore(
        MemoryCacheStore(1 << 20), namespace, clock, keep_alive
    )


def test_the_gateway_counts_and_invalidates_through_the_object(worker):
    async def go():
        namespace, clock = Namespace(worker), Clock()
        gw = worker_gateway(store(worker, namespace, clock), clock)
        assert status_of(await call(gw, body=CHAT)) == "MISS"
        assert status_of(await call(gw, body=CHAT)) == "HIT"
        assert status_of(await call(gw, body=CHAT)) == "HIT"
        stats = json.loads((await call(gw, "GET", "/v1/cache/stats", admin=True)).body)
        assert (stats["hits"], stats["misses"]) == (2, 1)
        assert stats["counted_by"] == "durable object" and stats["store"] == "kv"
        assert (await call(gw, "DELETE", "/v1/cache", admin=True)).status == 200
        assert status_of(await call(gw, body=CHAT)) == "MISS"  # the next one, at once
        assert list(namespace.objects) == ["cache:bookkeeping"]  # one object for all of it
        # Two generation reads: the first request's (kept for the next ones), one after the bump.
        assert namespace.calls.count("cache_generations") == 2
        stats = json.loads((await call(gw, "GET", "/v1/cache/stats", admin=True)).body)
        assert (stats["hits"], stats["misses"]) == (2, 2)

    asyncio.run(go())


def test_another_isolate_sees_a_bump_within_the_maximum_age(worker):
    async def go():
        namespace, clock = Namespace(worker), Clock()
        one, two = store(worker, namespace, clock), store(worker, namespace, clock)
        assert await two.generations("client:a") == (0, 0)
        await one.invalidate("client:a")
        assert await one.generations("client:a") == (0, 1)  # the isolate that bumped: at once
        assert await two.generations("client:a") == (0, 0)  # another one: what it kept...
        clock.now += worker.durable_cache.GENERATION_MAX_AGE
        assert await two.generations("client:a") == (0, 1)  # ...for at most this long
        await one.invalidate(None)  # everything's generation
        clock.now += worker.durable_cache.GENERATION_MAX_AGE
        assert await two.generations("client:b") == (1, 0)

    asyncio.run(go())


def test_counts_leave_off_the_request_path_batched_and_stats_read_them_exactly(worker):
    async def go():
        namespace, clock, kept = Namespace(worker), Clock(), []
        cache = store(worker, namespace, clock, kept)
        for hit in (True, False, True, True):
            await cache.count(hit)  # returns at once: nothing sent yet
        assert namespace.calls == []
        assert len(kept) == 1  # one task sends them, kept alive by the request
        await kept[0]
        assert namespace.calls == ["cache_count"]  # four counts, one call
        await cache.count(False)
        stats = await cache.stats()  # waits for the one on its way, then reads
        assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (3, 2, 0.6)

    asyncio.run(go())


def test_an_unreachable_object_is_cache_unavailable_and_names_no_detail(worker):
    class Down:
        def getByName(self, name):
            raise RuntimeError("the runtime's own words")

    async def go():
        cache = store(worker, Down(), Clock())
        with pytest.raises(CacheUnavailable) as caught:
            await cache.generations("client:a")
        assert "EDGERELAY_LIMITS" in str(caught.value)
        assert "own words" not in str(caught.value)
        await cache.count(True)  # best effort: dropped, nothing raised
        await cache._sending

    asyncio.run(go())


def test_the_object_keeps_generations_and_counts_in_its_sql_storage(worker):
    namespace = Namespace(worker)
    obj = namespace.getByName("cache:bookkeeping").obj
    assert json.loads(obj.cache_generations(json.dumps({"namespace": "n"}))) == [0, 0]
    assert obj.cache_invalidate(json.dumps({"namespace": "n"})) == "1"
    assert obj.cache_invalidate(json.dumps({"namespace": "n"})) == "2"
    assert obj.cache_invalidate(json.dumps({"namespace": None})) == "1"
    assert json.loads(obj.cache_generations(json.dumps({"namespace": "n"}))) == [1, 2]
    obj.cache_count(json.dumps({"hits": 2, "misses": 0}))
    totals = json.loads(obj.cache_stats(json.dumps({"hits": 1, "misses": 1})))
    assert totals == {"hits": 3, "misses": 1}


def test_the_entry_keeps_the_cache_books_in_the_object_only_when_it_is_bound(worker):
    kv = object()
    config = load_config({"EDGERELAY_CACHE": "on", "EDGERELAY_ALLOW_ANONYMOUS": "true"})
    bound = types.SimpleNamespace(EDGERELAY_CACHE_KV=kv, EDGERELAY_LIMITS=Namespace(worker))
    store_, missing = worker.kv_cache.cache_store_for(bound, config, time.time, None)
    assert isinstance(store_, worker.durable_cache.DurableCacheStore) and missing is None
    assert store_.entries.kv is kv
    alone = types.SimpleNamespace(EDGERELAY_CACHE_KV=kv)  # generations in KV, as before
    store_, missing = worker.kv_cache.cache_store_for(alone, config, time.time, None)
    assert isinstance(store_, worker.kv_cache.KvCacheStore) and missing is None
