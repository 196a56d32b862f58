"""The Worker's response cache with its bookkeeping in the Durable Object, inside Pyodide: the
real ``DurableCacheStore`` over the real ``KvCacheStore`` (a fake KV binding, as in
test_cache_kv.py) and a fake EDGERELAY_LIMITS namespace whose object keeps generations and
counters in dicts (the real object's SQL runs on CPython and under workerd). Two gateways stand
for two isolates: an invalidation is a MISS at once where it was made and within the generations'
maximum age elsewhere; hits and misses are counted across both."""

import asyncio
import json

from async_runner import timeout
from pyodide.code import run_js
from test_cache_kv import FAKE_KV
from workerd_call import load_entry

from tests.support.cache_calls import CHAT, Clock, cache_status, call, worker_gateway

load_entry()  # build/worker on sys.path, the real workers SDK
import durable_cache  # noqa: E402
from kv_cache import KvCacheStore  # noqa: E402


class Book:
    """The object's side with dicts: the same calls and answers as ``CacheBook``."""

    def __init__(self):
        self.generations = {}
        self.counts = {"hits": 0, "misses": 0}
        self.calls = []

    async def _call(self, name, payload):
        await asyncio.sleep(0)  # a real call yields to the event loop first
        self.calls.append(name)
        return json.loads(payload)

    async def cache_generations(self, payload):
        namespace = (await self._call("generations", payload))["namespace"]
        return json.dumps([self.generations.get("*", 0), self.generations.get(namespace, 0)])

    async def cache_invalidate(self, payload):
        name = (await self._call("invalidate", payload))["namespace"] or "*"
        self.generations[name] = self.generations.get(name, 0) + 1
        return str(self.generations[name])

    async def cache_count(self, payload):
        for name, amount in (await self._call("count", payload)).items():
            self.counts[name] += amount
        return "ok"

    async def cache_stats(self, payload):
        await self.cache_count(payload)
        return json.dumps(self.counts)


class Namespace:
    def __init__(self):
        self.book = Book()
        self.names = set()

    def getByName(self, name):
        self.names.add(name)
        return self.book


def isolate(kv, namespace, clock, kept):
    store = durable_cache.DurableCacheStore(KvCacheStore(kv), namespace, clock, kept.append)
    return worker_gateway(store, clock)


@timeout(20)
async def test_two_isolates_share_generations_and_counters_in_the_object():
    kv, namespace, clock, kept = run_js(FAKE_KV), Namespace(), Clock(), []
    one, two = isolate(kv, namespace, clock, kept), isolate(kv, namespace, clock, kept)
    assert cache_status(await call(one, body=CHAT)) == "MISS"
    assert cache_status(await call(two, body=CHAT)) == "HIT"  # the entry, through KV
    assert (await call(one, "DELETE", "/v1/cache", admin=True)).status == 200
    assert not [k for k in kv.values.to_py() if ":g:" in k]  # no generation in KV
    assert cache_status(await call(one, body=CHAT)) == "MISS"  # at once where it was made
    # The other isolate keeps the generation it read for GENERATION_MAX_AGE seconds.
    assert cache_status(await call(two, body=CHAT)) == "HIT"
    clock.now += durable_cache.GENERATION_MAX_AGE
    assert cache_status(await call(two, body=CHAT)) == "HIT"  # now the new entry
    await asyncio.gather(*kept)  # the other isolate's counts on their way
    stats = json.loads((await call(one, "GET", "/v1/cache/stats", admin=True)).body)
    assert (stats["hits"], stats["misses"]) == (3, 2)
    assert stats["counted_by"] == "durable object"
    assert namespace.names == {"cache:bookkeeping"}
    assert namespace.book.calls.count("generations") == 4  # each isolate: twice in all
