"""Stored /v1/responses answers on a real redis-server (loopback): records kept with their time
to live and per client namespace; two gateways (as two processes or Lambda instances) resolve
each other's ``previous_response_id`` and ``item_reference``; a store that is down is a 503
naming EDGERELAY_STORE for a reference, never a lost answer."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from edgerelay.core import ConfigError, Gateway, Request, load_config
from edgerelay.core.responses_api.store import StoreUnavailable
from edgerelay.stores.responses_redis import PREFIX, RedisResponseStore
from edgerelay.stores.select import response_store_for
from tests.support.fake_fetch import FakeFetch, FakeResponse
from tests.support.loopback import WAIT, free_port

NOW = 1_760_000_000.0


async def fresh(url, max_value_bytes=1 << 20) -> RedisResponseStore:
    store = RedisResponseStore.from_url(url, max_value_bytes=max_value_bytes, timeout=WAIT)
    await store.client.flushdb()
    return store


def test_records_round_trip_with_their_ttl_per_namespace(redis_url):
    async def body():
        store = await fresh(redis_url, max_value_bytes=100)
        try:
            await store.put("alice", "resp_1", b'{"output": []}', 90.0)
            assert await store.get("alice", "resp_1") == b'{"output": []}'
            assert await store.get("bob", "resp_1") is None  # another client's namespace
            assert await store.get("alice", "resp_2") is None
            ttl_ms = await store.client.pttl(PREFIX + "{alice}:resp_1")
            assert 0 < ttl_ms <= 90_000  # Redis drops it itself
            await store.put("alice", "big", b"x" * 101, 90.0)  # past the bound: not kept
            assert await store.get("alice", "big") is None
        finally:
            await store.aclose()

    asyncio.run(body())


def gateway(store, ids):
    fetch = FakeFetch(lambda request: FakeResponse(500))
    return Gateway(
        load_config({}), fetch, clock=lambda: NOW, new_id=lambda: next(ids), response_store=store
    )


async def post(gw, body, token="client-a"):
    raw = json.dumps(body).encode()
    headers = {"authorization": f"Bearer {token}"}
    response = await gw.handle(Request("POST", "/v1/responses", "", headers, raw))
    await response.aclose()
    return response.status, json.loads(response.body)


def test_two_gateways_share_stored_responses_through_redis(redis_url):
    async def body():
        ids = (f"id{n}" for n in itertools.count(1))
        first, second = await fresh(redis_url), await fresh(redis_url)
        try:
            one, two = gateway(first, ids), gateway(second, ids)
            status, answer = await post(one, {"model": "mock/echo", "input": "first turn"})
            assert status == 200
            follow = {"model": "mock/echo", "input": "again", "previous_response_id": answer["id"]}
            status, again = await post(two, follow)
            assert status == 200 and again["previous_response_id"] == answer["id"]
            message = answer["output"][0]["id"]
            items = [{"type": "item_reference", "id": message}, {"role": "user", "content": "x"}]
            status, _ = await post(two, {"model": "mock/echo", "input": items})
            assert status == 200
            # Not found for another client, nor with store: false.
            status, error = await post(two, follow, token="client-b")
            assert status == 400 and error["error"]["param"] == "previous_response_id"
            status, unkept = await post(one, {"model": "mock/echo", "input": "x", "store": False})
            assert status == 200
            status, error = await post(
                two, {"model": "mock/echo", "input": "y", "previous_response_id": unkept["id"]}
            )
            assert status == 400
        finally:
            await first.aclose()
            await second.aclose()

    asyncio.run(body())


def test_a_store_that_is_down_is_a_503_for_a_reference_and_answers_still_go_out():
    async def body():
        ids = (f"id{n}" for n in itertools.count(1))
        down = RedisResponseStore.from_url(
            f"redis://127.0.0.1:{free_port()}/0", max_value_bytes=1 << 20, timeout=WAIT
        )
        try:
            with pytest.raises(StoreUnavailable) as raised:
                await down.get("alice", "resp_1")
            assert "127.0.0.1" not in str(raised.value)
            gw = gateway(down, ids)
            status, answer = await post(gw, {"model": "mock/echo", "input": "hi"})
            assert status == 200 and answer["status"] == "completed"  # not kept, still answered
            follow = {"model": "mock/echo", "input": "x", "previous_response_id": "resp_1"}
            status, error = await post(gw, follow)
            assert status == 503
            assert error["error"]["code"] == "store_unavailable"
            assert "EDGERELAY_STORE" in error["error"]["message"]
        finally:
            await down.aclose()

    asyncio.run(body())


def test_the_setting_picks_the_store_and_a_bad_one_is_named_not_quoted():
    config = load_config({})
    assert response_store_for(config, {}) is None
    assert response_store_for(config, {"EDGERELAY_STORE": "memory"}) is None
    store = response_store_for(config, {"EDGERELAY_STORE": "redis://127.0.0.1:1/0"})
    assert isinstance(store, RedisResponseStore)
    assert store.max_value_bytes == config.responses_max_bytes
    asyncio.run(store.aclose())
    with pytest.raises(ConfigError) as raised:
        response_store_for(config, {"EDGERELAY_STORE": "mysql://user:secret@db/x"})
    assert raised.value.setting == "EDGERELAY_STORE" and "secret" not in str(raised.value)


def test_the_server_and_the_lambda_use_redis_when_the_setting_names_it(redis_url):
    from edgerelay.server.asgi import create_app as server_app
    from functions.aws_lambda.app import create_app as lambda_app

    fetch = FakeFetch(lambda request: FakeResponse(500))
    for make in (server_app, lambda_app):
        app = make({"EDGERELAY_STORE": redis_url}, fetch)
        assert isinstance(app.gateway.response_store, RedisResponseStore)
        asyncio.run(app.gateway.response_store.aclose())
        app = make({}, fetch)
        assert not isinstance(app.gateway.response_store, RedisResponseStore)
