"""The response cache on a real redis-server (loopback): the store's behaviour, a clear failure
when Redis is down, and two real `edgerelay serve` processes sharing one cache."""

from __future__ import annotations

import asyncio
import os

import httpx
import pytest

from edgerelay.core.cache import CacheUnavailable, Entry
from edgerelay.stores.redis_cache import RedisCacheStore
from tests.support.cache_wire import answer
from tests.support.loopback import WAIT, free_port, serve_process

NOW = 1_760_000_000.0


def entry(key: str, namespace="shared", ttl=60.0) -> Entry:
    return Entry.of(key, namespace, NOW, NOW + ttl, tuple(answer(("é", "漢字"))))


def with_store(url, body):
    async def go():
        store = RedisCacheStore.from_url(url, timeout=WAIT)
        await store.client.flushdb()
        try:
            return await body(store)
        finally:
            await store.aclose()

    return asyncio.run(go())


def test_put_get_expiry_delete(redis_url):
    async def body(store):
        one = entry("a" * 64)
        await store.put(one, NOW)
        assert await store.get("a" * 64, NOW + 1) == one  # bytes back unchanged
        assert await store.get("a" * 64, NOW + 60) is None  # past its lifetime on our clock
        ttl = await store.client.pttl("edgerelay:cache:e:" + "a" * 64)
        assert 0 < ttl <= 60_000  # and Redis drops it on its own
        assert await store.delete("a" * 64) is True
        assert await store.delete("a" * 64) is False
        assert await store.get("b" * 64, NOW) is None

    with_store(redis_url, body)


def test_generations_and_stats(redis_url):
    async def body(store):
        assert await store.generations("client:x") == (0, 0)
        await store.invalidate("client:x")
        await store.invalidate("client:x")
        await store.invalidate(None)
        assert await store.generations("client:x") == (1, 2)
        assert await store.generations("client:y") == (1, 0)
        for hit in (True, False, True):
            await store.count(hit)
        stats = await store.stats()
        assert (stats["hits"], stats["misses"], stats["hit_rate"]) == (2, 1, 0.6667)

    with_store(redis_url, body)


def test_a_foreign_value_under_the_key_is_a_miss(redis_url):
    async def body(store):
        await store.client.set("edgerelay:cache:e:" + "c" * 64, b"not an entry")
        assert await store.get("c" * 64, NOW) is None

    with_store(redis_url, body)


def test_redis_down_is_cache_unavailable_without_the_url():
    async def go():
        store = RedisCacheStore.from_url(f"redis://:hunter2secret@127.0.0.1:{free_port()}/0")
        try:
            with pytest.raises(CacheUnavailable) as caught:
                await store.generations("shared")
            assert "hunter2secret" not in str(caught.value)
        finally:
            await store.aclose()

    asyncio.run(go())


def test_two_gateway_processes_share_one_cache(redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    env = {
        **clean,
        "EDGERELAY_CACHE": "on",
        "EDGERELAY_STORE": redis_url,
        "EDGERELAY_STORE_TIMEOUT": str(WAIT),  # a loaded CI machine is slow, not down
    }
    ports = [free_port(), free_port()]
    servers = [serve_process(port, env) for port in ports]
    try:
        chat = {"model": "mock/echo", "messages": [{"role": "user", "content": "shared answer"}]}
        with httpx.Client(timeout=WAIT) as client:
            first = client.post(f"http://127.0.0.1:{ports[0]}/v1/chat/completions", json=chat)
            second = client.post(
                f"http://127.0.0.1:{ports[1]}/v1/chat/completions", json={**chat, "stream": True}
            )
        assert first.headers["x-edgerelay-cache"] == "MISS"
        assert second.headers["x-edgerelay-cache"] == "HIT"
        assert second.headers["x-edgerelay-cache-key"] == first.headers["x-edgerelay-cache-key"]
        # The other process replayed the first one's answer: its id, as a stream.
        assert first.json()["id"] in second.text
        assert second.text.endswith("data: [DONE]\n\n")
    finally:
        for server in servers:
            server.terminate()
            server.wait(WAIT)
