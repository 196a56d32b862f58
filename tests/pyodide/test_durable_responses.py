"""Stored /v1/responses answers in the Worker's Durable Objects, inside Pyodide, with a fake
namespace: each client's object runs the real ``ResponseRecords`` over dict rows and is reached
as the Worker reaches it (JSON text over an awaited call). Two gateways (two isolates) resolve
each other's references; records expire and stay within their bound; an unreachable object, or
no binding at all, is a 503 naming EDGERELAY_LIMITS for a reference while answers still go out."""

import asyncio
import itertools
import json

from workerd_call import load_entry

from edgerelay.core import Gateway, Request, load_config
from edgerelay.core.responses_api.records import DictRows, ResponseRecords
from edgerelay.core.responses_api.store import StoreUnavailable

load_entry()  # build/worker on sys.path, the real workers SDK
from durable_responses import DurableResponseStore, UnboundResponseStore  # noqa: E402

NOW = 1_760_000_000.0


class FakeStub:
    def __init__(self, records):
        self.records = records

    async def responses_get(self, payload):
        await asyncio.sleep(0)  # a real call yields to the event loop first
        return self.records.get(payload)

    async def responses_put(self, payload):
        await asyncio.sleep(0)
        return self.records.put(payload)


class FakeNamespace:
    def __init__(self):
        self.stubs = {}

    def getByName(self, name):
        if name not in self.stubs:
            self.stubs[name] = FakeStub(ResponseRecords(DictRows()))
        return self.stubs[name]


class Down:
    def getByName(self, name):
        raise RuntimeError("no such object")


def gateway(store, ids):
    env = {"EDGERELAY_ALLOW_ANONYMOUS": "true"}
    return Gateway(
        load_config(env),
        None,
        clock=lambda: NOW,
        new_id=lambda: next(ids),
        target="worker",
        response_store=store,
    )


async def post(gw, body, token="client-a"):
    headers = {"authorization": f"Bearer {token}"}
    request = Request("POST", "/v1/responses", "", headers, json.dumps(body).encode())
    response = await gw.handle(request)
    await response.aclose()
    return response.status, json.loads(response.body)


async def test_two_isolates_resolve_each_others_references():
    namespace = FakeNamespace()
    ids = (f"id{n}" for n in itertools.count(1))
    one = gateway(DurableResponseStore(namespace, lambda: NOW, 1 << 20), ids)
    two = gateway(DurableResponseStore(namespace, lambda: NOW, 1 << 20), ids)
    status, answer = await post(one, {"model": "mock/echo", "input": "first turn"})
    assert status == 200
    follow = {"model": "mock/echo", "input": "again", "previous_response_id": answer["id"]}
    status, again = await post(two, follow)
    assert status == 200 and again["previous_response_id"] == answer["id"]
    items = [{"type": "item_reference", "id": answer["output"][0]["id"]}]
    status, _ = await post(two, {"model": "mock/echo", "input": items})
    assert status == 200
    status, error = await post(two, follow, token="client-b")  # another client's object
    assert status == 400 and error["error"]["param"] == "previous_response_id"
    assert len(namespace.stubs) == 2  # one object per client namespace
    assert all(name.startswith("responses:") for name in namespace.stubs)


async def test_records_expire_and_stay_within_the_bound():
    now = [NOW]
    store = DurableResponseStore(FakeNamespace(), lambda: now[0], 250)
    await store.put("ns", "a", b"x" * 100, 60.0)
    await store.put("ns", "b", b"y" * 100, 120.0)
    assert await store.get("ns", "a") == b"x" * 100
    await store.put("ns", "c", b"z" * 100, 180.0)  # 300 bytes > 250: the oldest goes
    assert await store.get("ns", "a") is None
    assert await store.get("ns", "b") == b"y" * 100
    now[0] += 130.0
    assert await store.get("ns", "b") is None  # expired
    assert await store.get("ns", "c") == b"z" * 100
    small = DurableResponseStore(FakeNamespace(), lambda: NOW, 10)
    await small.put("ns", "big", b"w" * 11, 60.0)  # past the gateway's bound: never sent
    assert await small.get("ns", "big") is None


async def test_an_unreachable_object_is_a_503_for_a_reference_only():
    store = DurableResponseStore(Down(), lambda: NOW, 1 << 20)
    try:
        await store.get("ns", "a")
    except StoreUnavailable as exc:
        assert "EDGERELAY_LIMITS" in str(exc) and "EDGERELAY_LIMITS" in exc.setting
    else:
        raise AssertionError("an unreachable object must raise StoreUnavailable")
    ids = (f"id{n}" for n in itertools.count(1))
    gw = gateway(store, ids)
    status, answer = await post(gw, {"model": "mock/echo", "input": "hi"})
    assert status == 200 and answer["status"] == "completed"
    follow = {"model": "mock/echo", "input": "x", "previous_response_id": answer["id"]}
    status, error = await post(gw, follow)
    assert status == 503 and error["error"]["code"] == "store_unavailable"
    assert "EDGERELAY_LIMITS" in error["error"]["message"]


async def test_without_the_binding_nothing_is_stored_and_a_reference_names_it():
    ids = (f"id{n}" for n in itertools.count(1))
    gw = gateway(UnboundResponseStore(), ids)
    status, answer = await post(gw, {"model": "mock/echo", "input": "hi"})
    assert status == 200 and answer["status"] == "completed"
    follow = {"model": "mock/echo", "input": "x", "previous_response_id": answer["id"]}
    status, error = await post(gw, follow)
    assert status == 503 and error["error"]["code"] == "store_unavailable"
    assert "no EDGERELAY_LIMITS binding" in error["error"]["message"]
