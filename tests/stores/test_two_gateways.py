"""Two real `edgerelay serve` processes sharing one redis-server hold one limit exactly, and a
spoofed X-Forwarded-For does not give a caller a fresh per-address budget."""

from __future__ import annotations

import asyncio
import os
import time

import httpx
import pytest

from tests.support.loopback import WAIT, free_port, serve_process

LIMIT = 30
CONFIG = f'[policies.anonymous]\nrequests_per_minute = {LIMIT}\nlimit_window = "fixed"\n'
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture
def gateways(redis_url):
    import redis

    redis.Redis.from_url(redis_url).flushdb()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    env = {**clean, "EDGERELAY_CONFIG": CONFIG, "EDGERELAY_STORE": redis_url}
    env["EDGERELAY_STORE_TIMEOUT"] = str(WAIT)  # a loaded CI machine is slow, not down
    ports = [free_port(), free_port()]
    servers = [serve_process(port, env) for port in ports]
    yield [f"http://127.0.0.1:{port}" for port in ports]
    for server in servers:
        server.terminate()
        server.wait(WAIT)


def in_one_window(redis_url: str, run):
    """``run()``'s result from a run that fell inside one clock minute: a fixed window resets
    at each minute, so a run that crossed one is repeated once with the counters cleared."""
    import redis

    for _ in range(2):
        minute = time.time() // 60
        result = run()
        if time.time() // 60 == minute:
            return result
        redis.Redis.from_url(redis_url).flushdb()
    pytest.fail("both runs crossed a minute boundary")


def test_two_gateway_processes_hold_one_limit_exactly(gateways, redis_url):
    async def fire():
        async with httpx.AsyncClient(timeout=WAIT) as client:
            calls = [
                client.post(gateways[i % 2] + "/v1/chat/completions", json=CHAT)
                for i in range(LIMIT + 20)
            ]
            return await asyncio.gather(*calls)

    replies = in_one_window(redis_url, lambda: asyncio.run(fire()))
    statuses = [r.status_code for r in replies]
    assert statuses.count(200) == LIMIT
    assert statuses.count(429) == 20
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == str(LIMIT)


def test_a_spoofed_forwarded_for_does_not_reset_the_address_limit(gateways, redis_url):
    url = gateways[0] + "/v1/chat/completions"

    def run() -> list[int]:
        with httpx.Client(timeout=WAIT) as client:
            return [
                client.post(
                    url, json=CHAT, headers={"x-forwarded-for": f"203.0.113.{i}"}
                ).status_code
                for i in range(LIMIT + 1)
            ]

    statuses = in_one_window(redis_url, run)
    assert statuses.count(200) == LIMIT and statuses[-1] == 429
