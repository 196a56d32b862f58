"""Each Redis store call is bounded by EDGERELAY_STORE_TIMEOUT as a whole: a server that takes
the connection and never answers is a clear "store unavailable" in about that time (for the
limits, the cache and stored responses alike), and an answer that comes after the bound is
never read by the next call on the same client."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from edgerelay.core.cache import CacheUnavailable
from edgerelay.core.limits import Limiter, LimitPolicy, LimitRequest, LimitSettings
from edgerelay.core.responses_api.store import StoreUnavailable as ResponsesUnavailable
from edgerelay.stores.redis_cache import RedisCacheStore
from edgerelay.stores.redis_client import bounded, client_for
from edgerelay.stores.redis_store import RedisStore
from edgerelay.stores.responses_redis import RedisResponseStore

BOUND = 0.2
T0 = 1_760_000_040.0


class SlowRedis:
    """A loopback TCP server speaking just enough RESP: it answers the n-th data command after
    ``delays[n]`` seconds (None: never; past the list: at once) with the integer n, so a client
    that read a late answer as the next call's would be caught. Connection set-up commands
    (``HELLO``, ``CLIENT SETINFO``) are answered at once."""

    def __init__(self, delays: list[float | None]) -> None:
        self.delays = delays
        self.commands = 0
        self.answered: dict[int, asyncio.Event] = {}  # per command: its answer was written

    async def __aenter__(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"redis://:canary-password@127.0.0.1:{port}/0"  # never in a message

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readline()
                if not header:
                    return
                args = []
                for _ in range(int(header[1:])):  # each argument: a $len line, a data line
                    await reader.readline()
                    args.append((await reader.readline()).strip().upper())
                if args[0] == b"HELLO":  # RESP3, as redis-py asks: a map with the protocol
                    writer.write(b"%1\r\n$5\r\nproto\r\n:3\r\n")
                    continue
                if args[0] in (b"CLIENT", b"AUTH", b"SELECT"):
                    writer.write(b"+OK\r\n")
                    continue
                n = self.commands
                self.commands += 1
                delay = self.delays[n] if n < len(self.delays) else 0.0
                self.answered[n] = asyncio.Event()
                asyncio.get_running_loop().create_task(self._answer(writer, n, delay))
        except (ConnectionError, ValueError):
            return

    async def _answer(self, writer: asyncio.StreamWriter, n: int, delay: float | None) -> None:
        if delay is None:
            return
        await asyncio.sleep(delay)  # the server's own pace; the tests wait on ``answered``
        if not writer.is_closing():
            writer.write(b":%d\r\n" % n)
        self.answered[n].set()


def run(coro):
    return asyncio.run(coro)


def test_a_silent_redis_refuses_admission_within_the_bound_naming_the_setting():
    async def body():
        async with SlowRedis([None] * 10) as url:
            store = RedisStore.from_url(url, timeout=BOUND)
            policy = LimitPolicy(requests_per_minute=5)
            limiter = Limiter(LimitSettings({"default": policy}), store)
            start = time.monotonic()
            decision = await limiter.admit(LimitRequest(("ip:10.0.0.1",), policy), T0)
            elapsed = time.monotonic() - start
            await store.aclose()
            return decision, elapsed

    decision, elapsed = run(body())
    assert decision.error.status == 503
    assert "EDGERELAY_STORE_TIMEOUT" in decision.error.message
    assert "canary-password" not in decision.error.message
    assert BOUND <= elapsed < BOUND + 2.0  # the bound, not a hang (slack for a loaded machine)


def test_the_cache_and_stored_responses_are_bounded_too():
    async def body():
        async with SlowRedis([None] * 10) as url:
            cache = RedisCacheStore.from_url(url, timeout=BOUND)
            responses = RedisResponseStore.from_url(url, max_value_bytes=1 << 20, timeout=BOUND)
            with pytest.raises(CacheUnavailable):
                await cache.get("a" * 64, T0)
            with pytest.raises(ResponsesUnavailable) as raised:
                await responses.get("ns", "resp_1")
            await cache.aclose()
            await responses.aclose()
            return str(raised.value)

    message = run(body())
    assert "canary-password" not in message and "in time" in message


def test_a_late_answer_is_not_taken_for_the_next_call():
    async def body():
        # The first command is answered after its call gave up, the next ones at once.
        server = SlowRedis([BOUND * 2])
        async with server as url:
            client = client_for(url, BOUND)
            with pytest.raises(TimeoutError):
                await bounded(client.incr("first"), BOUND)
            second = await bounded(client.incr("second"), 10.0)
            await server.answered[0].wait()  # the late answer has been written by now
            third = await bounded(client.incr("third"), 10.0)
            await client.aclose()
            return second, third

    # Each call gets its own answer (1, 2), never the first call's late one (0).
    assert run(body()) == (1, 2)


@pytest.mark.parametrize("which", ["limits", "cache", "responses"])
def test_redis_named_without_redis_py_is_a_configuration_error(monkeypatch, which):
    from edgerelay.core import ConfigError, load_config
    from edgerelay.stores.cache_select import cache_store_for
    from edgerelay.stores.select import response_store_for, store_for

    monkeypatch.setitem(sys.modules, "redis", None)  # as if redis-py were not installed
    env = {
        "EDGERELAY_STORE": "redis://127.0.0.1:6379/0",
        "EDGERELAY_CONFIG": "[policies.anonymous]\nrequests_per_minute = 5\n",
        "EDGERELAY_CACHE": "on",
    }
    config = load_config(env)
    build = {
        "limits": lambda: store_for(config, env, memory_ok=True),
        "cache": lambda: cache_store_for(config, env),
        "responses": lambda: response_store_for(config, env),
    }[which]
    with pytest.raises(ConfigError) as raised:
        build()
    assert "edgerelay[redis]" in str(raised.value)


def test_a_late_answer_is_not_taken_for_the_next_script_call():
    """The same for the stores' own script calls, which keep their connections between calls:
    the connection a cut call was waiting on is dropped, never kept with a reply pending."""
    from edgerelay.stores.redis_client import Connections, Script

    async def body():
        server = SlowRedis([BOUND * 2])
        async with server as url:
            client = client_for(url, BOUND)
            script = Script(client, "return 1", Connections(client))
            with pytest.raises(TimeoutError):
                await bounded(script([], []), BOUND)
            second = await bounded(script([], []), 10.0)
            await server.answered[0].wait()  # the late answer has been written by now
            third = await bounded(script([], []), 10.0)
            await client.aclose()
            return second, third

    assert run(body()) == (1, 2)
