"""The Redis limit store against a real redis-server on loopback: the same decisions as the
memory store, exact under concurrency from several processes, and a clear failure when down."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from edgerelay.core.limits import (
    Limiter,
    LimitPolicy,
    LimitRequest,
    LimitSettings,
    MemoryStore,
    Price,
    Usage,
)
from edgerelay.stores.redis_store import RedisStore
from tests.support.loopback import WAIT, free_port

T0 = 1_760_000_040.0


def run(coro):
    return asyncio.run(coro)


async def with_store(url, body):
    store = RedisStore.from_url(url, timeout=WAIT)  # a loaded CI machine is slow, not down
    await store.client.flushdb()
    try:
        return await body(store)
    finally:
        await store.aclose()


def limiter(store, **policy):
    return Limiter(LimitSettings({"p": LimitPolicy(**policy)}, {"*": Price(1, 2)}), store)


async def admit(lim, now, key="key:a", **request):
    return await lim.admit(LimitRequest((key,), lim.settings.policies["p"], **request), now)


def test_redis_and_memory_decide_alike_through_window_edges(redis_url):
    policy = {"requests_per_minute": 4, "tokens_per_minute": 500, "window": "sliding"}
    times = [T0 + i * 7.5 for i in range(24)]

    async def trace(store):
        lim = limiter(store, **policy)
        out = []
        for i, now in enumerate(times):
            decision = await admit(lim, now, max_tokens=40 + 10 * (i % 5))
            retry = dict(decision.error.headers)["retry-after"] if decision.error else None
            out.append((decision.admitted, decision.headers, retry))
        return out

    assert run(with_store(redis_url, trace)) == run(trace(MemoryStore()))


def test_reserve_settle_and_slots_on_redis(redis_url):
    async def body(store):
        lim = limiter(store, tokens_per_day=1000, concurrent_streams=1)
        first = await admit(lim, T0, max_tokens=900, stream=True, slot_id="s1")
        assert first.admitted
        assert not (await admit(lim, T0, max_tokens=10, stream=True, slot_id="s2")).admitted
        await lim.release(first.reservation)
        refused = await admit(lim, T0, max_tokens=200, stream=True, slot_id="s3")
        assert refused.error.code == "insufficient_quota"  # slot free; tokens not
        await lim.settle(first.reservation, Usage(50, 50), 0, T0)
        assert (await admit(lim, T0, max_tokens=200, stream=True, slot_id="s4")).admitted
        # A crashed holder's slot expires: s4 is never released.
        later = T0 + lim.settings.slot_seconds + 1
        assert (await admit(lim, later, max_tokens=1, stream=True, slot_id="s5")).admitted

    run(with_store(redis_url, body))


def test_an_admitted_stream_costs_one_round_trip_in_and_one_out(redis_url):
    async def body(store):
        lim = limiter(store, tokens_per_day=1000, concurrent_streams=1)
        warm = await admit(lim, T0, max_tokens=100, stream=True, slot_id="s0", key="key:warm")
        await lim.finish(warm.reservation, Usage(1, 1), T0)  # Redis has loaded both scripts
        sent = []  # every command written to a connection: one per round trip
        connection_class = store.client.connection_pool.connection_class
        send = connection_class.send_packed_command

        async def counted(self, command, *args, **options):
            sent.append(bytes(command if isinstance(command, bytes) else b"".join(command)))
            return await send(self, command, *args, **options)

        connection_class.send_packed_command = counted
        try:
            first = await admit(lim, T0, max_tokens=900, stream=True, slot_id="s1")
            assert first.admitted
            await lim.finish(first.reservation, Usage(50, 50), T0)  # settled and released at once
        finally:
            connection_class.send_packed_command = send
        assert [command.split(b"\r\n")[2].upper() for command in sent] == [b"EVALSHA"] * 2
        # The slot is free and only the 100 used tokens count: 900 fit again.
        again = await admit(lim, T0, max_tokens=900, stream=True, slot_id="s2")
        assert again.admitted, again.error
        assert dict(again.headers)["x-ratelimit-remaining-tokens"] == "0"

    run(with_store(redis_url, body))


def test_settle_never_goes_below_zero(redis_url):
    async def body(store):
        lim = limiter(store, tokens_per_minute=100, window="fixed")
        decision = await admit(lim, T0, max_tokens=10)
        await lim.settle(decision.reservation, Usage(0, 0), 0, T0)  # charged 0 → -10 clamped
        assert (
            dict((await admit(lim, T0, max_tokens=100)).headers)["x-ratelimit-remaining-tokens"]
            == "0"
        )

    run(with_store(redis_url, body))


def test_concurrent_admissions_on_one_event_loop_are_exact(redis_url):
    async def body(store):
        lim = limiter(store, requests_per_minute=37)
        results = await asyncio.gather(*(admit(lim, T0) for _ in range(100)))
        return sum(d.admitted for d in results)

    assert run(with_store(redis_url, body)) == 37


_WORKER = textwrap.dedent(
    """
    import asyncio, sys
    from edgerelay.core.limits import Limiter, LimitPolicy, LimitRequest, LimitSettings
    from edgerelay.stores.redis_store import RedisStore

    async def main(url, n):
        store = RedisStore.from_url(url, timeout=10.0)
        lim = Limiter(LimitSettings({"p": LimitPolicy(requests_per_minute=50)}), store)
        policy = lim.settings.policies["p"]
        sys.stdin.readline()  # start together
        results = await asyncio.gather(
            *(lim.admit(LimitRequest(("key:shared",), policy), 1_760_000_040.0) for _ in range(n))
        )
        print(sum(d.admitted for d in results))
        await store.aclose()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def test_two_processes_share_one_exact_limit(redis_url):
    run(with_store(redis_url, lambda store: asyncio.sleep(0)))  # flushed
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WORKER, redis_url, "80"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        p.stdin.write("go\n")
        p.stdin.flush()
    counts = [int(p.communicate(timeout=30)[0]) for p in procs]
    assert sum(counts) == 50


def test_redis_down_is_store_unavailable_and_the_url_is_not_quoted():
    url = f"redis://:hunter2-secret@127.0.0.1:{free_port()}/0"

    async def body():
        store = RedisStore.from_url(url, timeout=0.5)
        lim = limiter(store, requests_per_minute=1)
        decision = await admit(lim, T0)
        await store.aclose()
        return decision

    decision = run(body())
    assert decision.error.status == 503
    assert "hunter2" not in decision.error.message
    assert "Redis" in decision.error.message


@pytest.mark.parametrize("scheme", ["redis", "rediss"])
def test_both_schemes_build_a_client(scheme):
    store = RedisStore.from_url(f"{scheme}://127.0.0.1:6379/0")
    assert store.client.connection_pool.connection_kwargs["host"] == "127.0.0.1"


@pytest.mark.parametrize("trouble", ["script_flush", "connection_killed", "no_hiredis"])
def test_admission_survives_a_flushed_script_a_killed_connection_and_no_hiredis(
    redis_url, monkeypatch, trouble
):
    """The admission script is sent packed on a pooled connection; when the server has lost
    the script, has closed that connection, or hiredis is missing, redis-py's own call takes
    over, and every admission is still counted once."""
    from edgerelay.stores import redis_client

    async def body(store):
        lim = limiter(store, requests_per_minute=3)
        first = await admit(lim, T0)
        if trouble == "script_flush":
            await store.client.script_flush()
        elif trouble == "connection_killed":
            await store.client.client_kill_filter(_type="normal", skipme=False)
        else:
            monkeypatch.setattr(redis_client, "pack_command", None)
        rest = [await admit(lim, T0 + 1) for _ in range(3)]
        return [d.admitted for d in (first, *rest)]

    assert run(with_store(redis_url, body)) == [True, True, True, False]
