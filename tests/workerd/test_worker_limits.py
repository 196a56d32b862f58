"""Limits on the Worker under the real local runtime: the EdgerelayLimits Durable Object (Python,
SQL storage) bound as EDGERELAY_LIMITS holds a limit exactly under 50 concurrent requests, the
429 carries OpenAI's headers, and each request prints its JSON log line."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import pytest

from tests.support.loopback import WAIT

pytestmark = pytest.mark.workerd

LIMIT = 20
# A token limit no passthrough call below fits (its output limit alone is larger): refused
# whatever the window, with no upstream call (the providers' base URLs lead nowhere).
CONFIG = (
    f"[policies.anonymous]\nrequests_per_minute = {LIMIT}\ntokens_per_minute = 100000\n"
    'passthrough = ["anthropic", "gemini"]\n'
    'default_max_tokens = 10\nlimit_window = "fixed"\n'
    f'[policies.default]\nrequests_per_minute = {LIMIT}\nlimit_window = "fixed"\n'
)
# Server-to-server callers under the default policy, each its own counters: a burst that
# crosses a minute boundary (a fixed window resets there) is repeated as a fresh client.
KEYS = ("edgerelay-test-client-one", "edgerelay-test-client-two")
NOWHERE = "http://127.0.0.1:9"
BINDING = """
[[durable_objects.bindings]]
name = "EDGERELAY_LIMITS"
class_name = "EdgerelayLimits"

[[migrations]]
tag = "v1"
new_sqlite_classes = ["EdgerelayLimits"]
"""
CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def worker(start_worker):
    return start_worker(
        vars={
            "EDGERELAY_CONFIG": CONFIG,
            "EDGERELAY_ALLOW_ANONYMOUS": "true",
            "ANTHROPIC_BASE_URL": NOWHERE,
            "GEMINI_BASE_URL": NOWHERE,
        },
        secrets={
            "ANTHROPIC_API_KEY": "sk-ant-test-key",
            "GEMINI_API_KEY": "gemini-test-key",
            "EDGERELAY_CLIENT_KEYS": ",".join(KEYS),
        },
        extra_toml=BINDING,
    )


def burst(url: str, key: str) -> list[httpx.Response]:
    """Fifty concurrent chat calls as the client holding ``key``."""

    async def fire():
        headers = {"authorization": f"Bearer {key}"}
        async with httpx.AsyncClient(timeout=WAIT * 6, headers=headers) as client:
            calls = [client.post(url + "/v1/chat/completions", json=CHAT) for _ in range(50)]
            return await asyncio.gather(*calls)

    return asyncio.run(fire())


def test_fifty_concurrent_requests_admit_exactly_the_limit(worker):
    for key in KEYS:
        minute = time.time() // 60
        replies = burst(worker.url, key)
        if time.time() // 60 == minute:
            break  # the whole burst fell inside one fixed window
    else:
        pytest.fail("each burst crossed a minute boundary")
    statuses = [r.status_code for r in replies]
    assert statuses.count(200) == LIMIT, statuses
    assert statuses.count(429) == 50 - LIMIT
    refused = next(r for r in replies if r.status_code == 429)
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(refused.headers["retry-after"]) >= 1
    assert refused.headers["x-ratelimit-limit-requests"] == str(LIMIT)
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    admitted = next(r for r in replies if r.status_code == 200)
    request_id = admitted.headers["x-edgerelay-request-id"]
    lines = [json.loads(line) for line in worker.log().splitlines() if '"request_id"' in line]
    mine = [entry for entry in lines if entry["request_id"] == request_id]
    assert mine and mine[0]["limit"] == "admitted" and mine[0]["status"] == 200


def test_passthrough_calls_are_refused_in_each_providers_shape(worker):
    too_much = 200_000
    anthropic = httpx.post(
        worker.url + "/anthropic/v1/messages",
        json={"model": "claude-sonnet-4-6", "max_tokens": too_much, "messages": []},
        timeout=WAIT,
    )
    assert anthropic.status_code == 429
    assert anthropic.json()["type"] == "error"
    assert anthropic.json()["error"]["type"] == "rate_limit_error"
    assert int(anthropic.headers["retry-after"]) >= 1
    gemini = httpx.post(
        worker.url + "/gemini/v1beta/models/gemini-2.5-flash:generateContent",
        json={"contents": [], "generationConfig": {"maxOutputTokens": too_much}},
        timeout=WAIT,
    )
    assert gemini.status_code == 429
    assert gemini.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert "sk-ant-test-key" not in worker.log() and "gemini-test-key" not in worker.log()
