"""The Worker's Durable Object limit store inside Pyodide, with a fake namespace: each key's
object runs the real ``LimitsObject`` over in-memory cells and is reached as the Worker reaches
it (JSON text over an awaited call). 50 concurrent admissions admit exactly the limit; a session
refused by its address gives back what the session took; an unreachable object is a 503."""

import asyncio

from workerd_call import load_entry

from edgerelay.core.limits import (
    Limiter,
    LimitPolicy,
    LimitRequest,
    LimitSettings,
    StoreUnavailable,
    client_keys,
)
from edgerelay.core.limits.store import DictCells

load_entry()  # build/worker on sys.path, the real workers SDK
from durable_store import DurableObjectStore  # noqa: E402
from limits_object import LimitsObject  # noqa: E402

T0 = 1_760_000_040.0


class FakeStub:
    """An object's RPC stub: every call yields to the event loop first, as a real call does."""

    def __init__(self, obj):
        self.obj = obj
        self.calls = 0

    async def _rpc(self, method, payload):
        self.calls += 1
        await asyncio.sleep(0)
        return getattr(self.obj, method)(payload)

    async def admit(self, payload):
        return await self._rpc("admit", payload)

    async def adjust(self, payload):
        return await self._rpc("adjust", payload)

    async def release(self, payload):
        return await self._rpc("release", payload)


class FakeNamespace:
    def __init__(self):
        self.stubs = {}

    def getByName(self, name):
        if name not in self.stubs:
            self.stubs[name] = FakeStub(LimitsObject(DictCells()))
        return self.stubs[name]


def limiter(namespace, **policy):
    settings = LimitSettings({"p": LimitPolicy(**policy)})
    return Limiter(settings, DurableObjectStore(namespace))


async def test_fifty_concurrent_admissions_are_exact():
    namespace = FakeNamespace()
    lim = limiter(namespace, requests_per_minute=20)
    policy = lim.settings.policies["p"]
    decisions = await asyncio.gather(
        *(lim.admit(LimitRequest(("key:k",), policy), T0) for _ in range(50))
    )
    assert sum(d.admitted for d in decisions) == 20
    assert list(namespace.stubs) == ["key:k"]  # one object per client key


async def test_a_session_refused_by_its_address_gives_back_what_it_took():
    namespace = FakeNamespace()
    lim = limiter(namespace, requests_per_minute=1, concurrent_streams=5)
    policy = lim.settings.policies["p"]
    first = LimitRequest(client_keys("session:a", "203.0.113.1"), policy, stream=True, slot_id="1")
    assert (await lim.admit(first, T0)).admitted
    second = LimitRequest(client_keys("session:b", "203.0.113.1"), policy, stream=True, slot_id="2")
    refused = await lim.admit(second, T0)
    assert refused.error.status == 429
    # session:b's own object took one request and a slot, then gave both back.
    third = LimitRequest(client_keys("session:b", "198.51.100.1"), policy, stream=True, slot_id="3")
    assert (await lim.admit(third, T0)).admitted


async def test_settle_and_release_reach_the_right_object():
    namespace = FakeNamespace()
    lim = limiter(namespace, tokens_per_minute=100, concurrent_streams=1, window="fixed")
    policy = lim.settings.policies["p"]
    request = LimitRequest(("key:k",), policy, max_tokens=90, stream=True, slot_id="s")
    decision = await lim.admit(request, T0)
    assert not (await lim.admit(request._replace(max_tokens=5, slot_id="t"), T0)).admitted
    from edgerelay.core.limits import Usage

    await lim.settle(decision.reservation, Usage(5, 5), 0, T0)
    await lim.release(decision.reservation)
    again = await lim.admit(request._replace(max_tokens=80, slot_id="u"), T0)
    assert again.admitted
    assert dict(again.headers)["x-ratelimit-remaining-tokens"] == "10"


class DownNamespace:
    def getByName(self, name):
        raise RuntimeError("binding gone")


async def test_an_unreachable_object_is_store_unavailable():
    store = DurableObjectStore(DownNamespace())
    try:
        await store.admit((), (), T0)
    except StoreUnavailable:
        pass
    lim = limiter(DownNamespace(), requests_per_minute=1)
    decision = await lim.admit(LimitRequest(("key:k",), lim.settings.policies["p"]), T0)
    assert decision.error.status == 503
    assert "EDGERELAY_LIMITS" in decision.error.message
