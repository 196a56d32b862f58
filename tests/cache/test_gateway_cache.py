"""The response cache through the real Gateway (core) over a fake upstream, on CPython's event
loop: hit, miss, TTL, stream and JSON replays (validated with the openai SDK's own models),
what is never stored, namespaces, one upstream call for N concurrent identical requests with
progressive replay (lock-step, no sleeps), cancellation only when the last waiter leaves,
stats, invalidation and the admin check."""

from __future__ import annotations

import asyncio
import itertools
import json

from openai.types.chat import ChatCompletion, ChatCompletionChunk

from edgerelay.core import FetchError, Gateway, Request, load_config
from edgerelay.core.cache import MemoryCacheStore
from edgerelay.core.identity.tokens import mint_hs256
from tests.support.cache_wire import DONE, answer, text_of_chunks

KEY = "sk-test-upstream-key-123456"


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Upstream:
    """A fake OpenAI upstream. ``gated``: each chunk waits for ``release()`` (lock-step)."""

    def __init__(self, chunks=None, *, status=200, gated=False, error_after=None):
        self.chunks = list(chunks if chunks is not None else answer())
        self.status = status
        self.gated = gated
        self.error_after = error_after
        self.requests = []
        self.responses = []

    async def __call__(self, request):
        self.requests.append(request)
        response = _Response(self)
        self.responses.append(response)
        return response

    def release(self, n: int = 1) -> None:
        for response in self.responses:
            for _ in range(n):
                response.gate.put_nowait(None)

    async def aclose(self):
        pass


class _Response:
    native_body = None

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.status = upstream.status
        ok = upstream.status < 400
        self.headers = {"content-type": "text/event-stream" if ok else "application/json"}
        self.gate: asyncio.Queue = asyncio.Queue()
        self.sent = 0
        self.closed = False

    async def aiter_bytes(self):
        if self.status >= 400:
            yield b'{"error": {"message": "overloaded", "type": "server_error"}}'
            return
        for i, chunk in enumerate(self.upstream.chunks):
            if i == self.upstream.error_after:
                raise FetchError("connection reset")
            if self.upstream.gated:
                await self.gate.get()
            self.sent += 1
            yield chunk

    async def read(self):
        return b"".join([c async for c in self.aiter_bytes()])

    async def aclose(self):
        self.closed = True


def gateway(upstream, clock=None, **env):
    # No retries: these count the upstream calls each cache decision makes (a MISS's call
    # retried and falling back is core.attempts', tested in tests/core/test_gateway_retries).
    env = {"OPENAI_API_KEY": KEY, "EDGERELAY_CACHE": "on", "EDGERELAY_RETRIES": "0", **env}
    ids = itertools.count(1)
    return Gateway(
        load_config(env), upstream, clock=clock or Clock(), new_id=lambda: f"id{next(ids)}"
    )


def body(stream=False, content="hi", **extra):
    out = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": content}], **extra}
    if stream:
        out["stream"] = True
    return json.dumps(out).encode()


def request(raw, headers=None, path="/v1/chat/completions", method="POST", query=""):
    return Request(method, path, query, headers or {}, raw)


async def whole(response):
    """The body (joined stream batches), then close as adapters do."""
    data = response.body if response.stream is None else [c async for c in response.stream]
    await response.aclose()
    return data


def header(response, name):
    values = [v for k, v in response.headers if k == name]
    return values[-1] if values else None


def flight_task(gw):
    """The task of the one flight in progress."""
    (flight,) = gw.cache.flights.values()
    return flight._task


def run(coro):
    # The bound only turns a deadlock (a buffering or stuck flight) into a quick failure.
    return asyncio.run(asyncio.wait_for(coro, 10))


# --- hit and miss


def test_miss_then_hit_json_with_headers():
    async def go():
        upstream = Upstream()
        clock = Clock()
        gw = gateway(upstream, clock)
        first = await gw.handle(request(body()))
        first_body = await whole(first)
        assert header(first, "x-edgerelay-cache") == "MISS"
        key = header(first, "x-edgerelay-cache-key")
        assert key and len(key) == 64
        # The upstream was asked for a stream with usage, whatever the client asked.
        sent = json.loads(upstream.requests[0].body)
        assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
        clock.now += 7
        second = await gw.handle(request(body()))
        second_body = await whole(second)
        assert header(second, "x-edgerelay-cache") == "HIT"
        assert header(second, "x-edgerelay-cache-key") == key
        assert header(second, "age") == "7"
        assert len(upstream.requests) == 1
        assert first_body == second_body
        completion = ChatCompletion.model_validate_json(second_body)
        assert completion.choices[0].message.content == "Hello there"
        assert completion.usage.total_tokens == 6

    run(go())


def test_stream_then_json_and_json_then_stream():
    async def go():
        upstream = Upstream(answer(("Hel", "lo", " wor", "ld")))
        gw = gateway(upstream)
        streamed = await whole(await gw.handle(request(body(stream=True))))
        hit = await gw.handle(request(body()))
        completion = ChatCompletion.model_validate_json(await whole(hit))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        assert completion.choices[0].message.content == "Hello world"
        assert completion.choices[0].finish_reason == "stop"
        # The streaming client did not ask for usage: it got none, and [DONE] last.
        assert streamed[-1] == DONE
        assert b'"usage"' not in b"".join(streamed)

        upstream2 = Upstream(answer(("One", " two")))
        gw2 = gateway(upstream2)
        json_first = await gw2.handle(request(body(content="x")))
        await whole(json_first)
        replay = await gw2.handle(
            request(body(stream=True, content="x", stream_options={"include_usage": True}))
        )
        batches = await whole(replay)
        assert header(replay, "x-edgerelay-cache") == "HIT"
        assert replay.stream is None  # a hit's events are all here: one write
        assert text_of_chunks([batches]) == ["One", " two"]  # the original split
        assert batches.endswith(DONE)
        chunks = [
            ChatCompletionChunk.model_validate_json(line[6:])
            for line in batches.split(b"\n")
            if line.startswith(b"data: {")
        ]
        assert chunks[-1].usage.total_tokens == 5  # asked for usage: the usage chunk comes
        assert len(upstream2.requests) == 1

    run(go())


def test_ttl_expiry_on_the_injected_clock():
    async def go():
        upstream = Upstream()
        clock = Clock()
        gw = gateway(upstream, clock, EDGERELAY_CACHE_TTL="60")
        await whole(await gw.handle(request(body())))
        clock.now += 59
        assert header(await gw.handle(request(body())), "x-edgerelay-cache") == "HIT"
        clock.now += 1
        again = await gw.handle(request(body()))
        await whole(again)
        assert header(again, "x-edgerelay-cache") == "MISS"
        assert len(upstream.requests) == 2
        short = await gw.handle(request(body(content="y"), {"x-edgerelay-cache-ttl": "61"}))
        await whole(short)
        clock.now += 61
        assert header(await gw.handle(request(body(content="y"))), "x-edgerelay-cache") == "MISS"

    run(go())


def test_off_adds_no_header_and_opt_in_bypasses_without_asking():
    async def go():
        upstream = Upstream()
        off = gateway(upstream, EDGERELAY_CACHE="off")
        response = await off.handle(request(body(stream=True)))
        await whole(response)
        assert header(response, "x-edgerelay-cache") is None
        # Off: the request goes upstream as the client sent it.
        assert "stream_options" not in json.loads(upstream.requests[0].body)

        opt_in = gateway(Upstream(), EDGERELAY_CACHE="opt-in")
        bypass = await opt_in.handle(request(body()))
        await whole(bypass)
        assert header(bypass, "x-edgerelay-cache") == "BYPASS"
        assert header(bypass, "x-edgerelay-cache-key") is None
        asked = await opt_in.handle(request(body(), {"x-edgerelay-cache": "on"}))
        await whole(asked)
        assert header(asked, "x-edgerelay-cache") == "MISS"
        bad = await opt_in.handle(request(body(), {"x-edgerelay-cache": "please"}))
        assert bad.status == 400
        assert json.loads(bad.body)["error"]["param"] == "x-edgerelay-cache"

    run(go())


def test_refresh_skips_the_lookup_and_stores_the_new_answer():
    async def go():
        upstream = Upstream(answer(("old",)))
        gw = gateway(upstream)
        await whole(await gw.handle(request(body())))
        upstream.chunks = answer(("new",))
        refreshed = await gw.handle(request(body(), {"x-edgerelay-cache": "refresh"}))
        assert "new" in (await whole(refreshed)).decode()
        assert header(refreshed, "x-edgerelay-cache") == "REFRESH"
        hit = await gw.handle(request(body()))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        assert "new" in (await whole(hit)).decode()
        no_store = await gw.handle(request(body(content="z"), {"cache-control": "no-store"}))
        await whole(no_store)
        assert header(no_store, "x-edgerelay-cache-key") is None
        miss = await gw.handle(request(body(content="z")))
        await whole(miss)
        assert header(miss, "x-edgerelay-cache") == "MISS"

    run(go())


# --- never stored


def test_a_broken_stream_is_not_stored_and_the_json_client_gets_a_502():
    async def go():
        upstream = Upstream(error_after=3)
        gw = gateway(upstream)
        broken = await gw.handle(request(body(stream=True)))
        batches = await whole(broken)
        assert b'"error"' in batches[-1]  # the route's terminal error event
        as_json = await gw.handle(request(body()))
        assert as_json.status == 502
        assert len(upstream.requests) == 2  # nothing was stored

    run(go())


def test_an_upstream_error_is_not_stored():
    async def go():
        upstream = Upstream(status=503)
        gw = gateway(upstream)
        first = await gw.handle(request(body()))
        assert first.status == 503
        second = await gw.handle(request(body(stream=True)))
        assert second.status == 503
        assert len(upstream.requests) == 2

    run(go())


def test_an_unterminated_stream_is_not_stored():
    async def go():
        upstream = Upstream(answer()[:-1])  # no [DONE]
        gw = gateway(upstream)
        await whole(await gw.handle(request(body(stream=True))))
        await whole(await gw.handle(request(body(stream=True))))
        assert len(upstream.requests) == 2

    run(go())


def test_an_abandoned_stream_is_cancelled_and_not_stored():
    async def go():
        upstream = Upstream(gated=True)
        gw = gateway(upstream)
        response = await gw.handle(request(body(stream=True)))
        upstream.release()
        first = await response.stream.__anext__()
        assert b"assistant" in first
        task = flight_task(gw)
        await response.aclose()  # the client left
        await asyncio.wait([task])  # the cancelled call has cleaned up
        assert task.cancelled()
        assert upstream.responses[0].closed
        upstream.gated = False
        again = await gw.handle(request(body(stream=True)))
        await whole(again)
        assert header(again, "x-edgerelay-cache") == "MISS"
        assert len(upstream.requests) == 2

    run(go())


# --- namespaces


CLIENT_A = "client-key-aaaaaaaaaaaa"
CLIENT_B = "client-key-bbbbbbbbbbbb"


def test_two_clients_never_share_an_entry():
    async def go():
        upstream = Upstream()
        gw = gateway(upstream, EDGERELAY_CLIENT_KEYS=f"{CLIENT_A},{CLIENT_B}")
        a1 = await gw.handle(request(body(), {"authorization": f"Bearer {CLIENT_A}"}))
        await whole(a1)
        b1 = await gw.handle(request(body(), {"authorization": f"Bearer {CLIENT_B}"}))
        await whole(b1)
        assert header(b1, "x-edgerelay-cache") == "MISS"
        assert header(a1, "x-edgerelay-cache-key") != header(b1, "x-edgerelay-cache-key")
        a2 = await gw.handle(request(body(), {"authorization": f"Bearer {CLIENT_A}"}))
        await whole(a2)
        assert header(a2, "x-edgerelay-cache") == "HIT"
        assert len(upstream.requests) == 2

    run(go())


SESSION_SECRET = "session-secret-for-cache-tests-0123456789"


def session(sub: str) -> dict:
    """A gateway session (policy ``anonymous``) as POST /v1/sessions mints them."""
    claims = {
        "iss": "edgerelay-session",
        "sub": sub,
        "iat": 990,
        "exp": 1600,
        "edgerelay_policy": "anonymous",
    }
    return {"authorization": "Bearer " + mint_hs256(claims, SESSION_SECRET.encode())}


def test_anonymous_visitors_share_one_namespace_unless_configured():
    async def go():
        env = {
            "EDGERELAY_SESSION_SECRET": SESSION_SECRET,
            "EDGERELAY_TURNSTILE_SECRET": "turnstile-secret-0123",
            "EDGERELAY_CLIENT_KEYS": CLIENT_A,
        }
        upstream = Upstream()
        gw = gateway(upstream, **env)
        await whole(await gw.handle(request(body(), session("visitor-1"))))
        other = await gw.handle(request(body(), session("visitor-2")))
        await whole(other)
        assert header(other, "x-edgerelay-cache") == "HIT"  # another visitor, one namespace
        keyed = await gw.handle(request(body(), {"authorization": f"Bearer {CLIENT_A}"}))
        await whole(keyed)
        assert header(keyed, "x-edgerelay-cache") == "MISS"  # a client key is its own namespace
        assert len(upstream.requests) == 2

        private = gateway(
            Upstream(), EDGERELAY_CONFIG="[cache.policies.anonymous]\nshared = false\n", **env
        )
        await whole(await private.handle(request(body(), session("visitor-1"))))
        apart = await private.handle(request(body(), session("visitor-2")))
        await whole(apart)
        assert header(apart, "x-edgerelay-cache") == "MISS"
        again = await private.handle(request(body(), session("visitor-1")))
        await whole(again)
        assert header(again, "x-edgerelay-cache") == "HIT"

    run(go())


# --- one upstream call per key


def test_concurrent_identical_requests_make_one_upstream_call_with_progressive_replay():
    async def go():
        chunks = answer(("a", "b", "c"))
        upstream = Upstream(chunks, gated=True)
        gw = gateway(upstream)
        # They ask for usage, so each upstream chunk is one chunk for each of them.
        usage = {"stream_options": {"include_usage": True}}
        streams = [await gw.handle(request(body(stream=True, **usage))) for _ in range(3)]
        # A JSON client waiting on the same call (its answer comes once the stream is over).
        plain = asyncio.ensure_future(gw.handle(request(body())))
        statuses = [header(s, "x-edgerelay-cache") for s in streams]
        assert statuses == ["MISS", "HIT", "HIT"]
        readers = [s.stream for s in streams]
        received: list[list[bytes]] = [[] for _ in readers]
        # Lock-step: chunk k+1 leaves the upstream only once every client has read chunk k.
        for k in range(len(chunks)):
            upstream.release()
            for i, reader in enumerate(readers):
                got = await reader.__anext__()
                received[i].append(got)
            assert upstream.responses[0].sent == k + 1
        for reader, got in zip(readers, received, strict=True):
            rest = [c async for c in reader]
            assert b"".join(got + rest) == b"".join(received[0])
        for s in streams:
            await s.aclose()
        assert len(upstream.requests) == 1
        assert b"".join(received[0]).endswith(DONE)
        assert text_of_chunks(received[0]) == ["a", "b", "c"]
        answer_json = ChatCompletion.model_validate_json(await whole(await plain))
        assert answer_json.choices[0].message.content == "abc"

    run(go())


def test_on_the_worker_target_the_shared_call_is_kept_alive_and_waiters_keep_a_timer():
    async def go():
        upstream = Upstream(answer(("a", "b")), gated=True)
        kept = []
        env = {"OPENAI_API_KEY": KEY, "EDGERELAY_CACHE": "on", "EDGERELAY_RETRIES": "0"}
        gw = Gateway(
            load_config({**env, "EDGERELAY_ALLOW_ANONYMOUS": "true"}),
            upstream,
            clock=Clock(),
            new_id=lambda: "id",
            target="worker",
            cache_keep_alive=kept.append,
        )
        assert gw.cache.flight_tick is not None  # workerd: a waiting request keeps a timer
        gw.cache.flight_tick = 0.0  # re-armed at every turn of the loop: the path is taken
        usage = {"stream_options": {"include_usage": True}}
        one, two = [await gw.handle(request(body(stream=True, **usage))) for _ in range(2)]
        assert kept == [flight_task(gw)]  # the leader's request keeps the call going
        for _ in answer(("a", "b")):
            upstream.release()
            assert await one.stream.__anext__() == await two.stream.__anext__()
        await whole(one)
        await whole(two)
        assert len(upstream.requests) == 1
        assert upstream.requests[0].shared  # no one client's leaving aborts it

    run(go())


class SlowCounts(MemoryCacheStore):
    """Counting is a call to somewhere else (the Worker's Durable Object, Redis): it yields."""

    async def count(self, hit: bool) -> None:
        await asyncio.sleep(0)
        await super().count(hit)


def test_requests_arriving_together_share_the_call_when_counting_yields():
    async def go():
        upstream = Upstream(gated=True)
        env = {"OPENAI_API_KEY": KEY, "EDGERELAY_CACHE": "on", "EDGERELAY_RETRIES": "0"}
        gw = Gateway(
            load_config(env),
            upstream,
            clock=Clock(),
            new_id=lambda: "id",
            cache_store=SlowCounts(1 << 20),
        )
        one, two = await asyncio.gather(*(gw.handle(request(body(stream=True))) for _ in "12"))
        upstream.release(20)
        await whole(one)
        await whole(two)
        assert len(upstream.requests) == 1
        assert sorted(header(r, "x-edgerelay-cache") for r in (one, two)) == ["HIT", "MISS"]
        assert (await gw.cache.store.stats())["misses"] == 1

    run(go())


def test_an_uncached_call_is_not_shared():
    async def go():
        upstream = Upstream()
        gw = gateway(upstream)
        await whole(await gw.handle(request(body(), {"x-edgerelay-cache": "off"})))
        await whole(await gw.handle(request(body())))
        assert [r.shared for r in upstream.requests] == [False, True]

    run(go())


def test_a_late_joiner_gets_what_arrived_so_far_then_follows_live():
    async def go():
        upstream = Upstream(answer(("a", "b", "c")), gated=True)
        gw = gateway(upstream)
        first = await gw.handle(request(body(stream=True)))
        upstream.release(2)
        early = [await first.stream.__anext__(), await first.stream.__anext__()]
        late = await gw.handle(request(body(stream=True)))
        assert header(late, "x-edgerelay-cache") == "HIT"
        assert [await late.stream.__anext__(), await late.stream.__anext__()] == early
        upstream.release()
        live = await first.stream.__anext__()
        assert await late.stream.__anext__() == live  # sent on as it arrives, not at the end
        upstream.release(10)
        await whole(first)
        await whole(late)
        assert len(upstream.requests) == 1

    run(go())


def test_the_upstream_call_is_cancelled_only_when_the_last_waiter_leaves():
    async def go():
        upstream = Upstream(gated=True)
        gw = gateway(upstream)
        one = await gw.handle(request(body(stream=True)))
        two = await gw.handle(request(body(stream=True)))
        upstream.release()
        await one.stream.__anext__()
        await two.stream.__anext__()
        task = flight_task(gw)
        await one.aclose()
        assert not task.cancelling()
        assert not upstream.responses[0].closed  # the other waiter still reads it
        upstream.release()
        assert b"content" in await two.stream.__anext__()
        await two.aclose()
        await asyncio.wait([task])
        assert task.cancelled()
        assert upstream.responses[0].closed  # the last one left: the call goes too

    run(go())


def test_a_client_gone_before_its_first_read_still_leaves_the_group():
    async def go():
        upstream = Upstream(gated=True)
        gw = gateway(upstream)
        response = await gw.handle(request(body(stream=True)))  # no usage asked: stripped
        task = flight_task(gw)
        await response.aclose()  # the adapter closes a body it never started sending
        await asyncio.wait([task])
        assert task.cancelled() and upstream.responses[0].closed

    run(go())


def test_waiters_of_a_failed_call_all_get_its_error():
    async def go():
        upstream = Upstream(status=500)
        gw = gateway(upstream)
        answers = await asyncio.gather(*(gw.handle(request(body())) for _ in range(3)))
        assert [a.status for a in answers] == [500, 500, 500]
        assert len(upstream.requests) == 1

    run(go())


# --- stats, invalidation, admin

ADMIN = "admin-key-for-tests-0123"


def admin(gw, method, path, query="", key=ADMIN):
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return gw.handle(request(b"", headers, path=path, method=method, query=query))


def test_admin_routes_need_the_admin_key_and_are_404_without_one():
    async def go():
        closed = gateway(Upstream())
        assert (await admin(closed, "GET", "/v1/cache/stats")).status == 404
        gw = gateway(Upstream(), EDGERELAY_ADMIN_KEY=ADMIN, EDGERELAY_CLIENT_KEYS=CLIENT_A)
        wrong = await admin(gw, "GET", "/v1/cache/stats", key="admin-key-for-tests-0124")
        assert wrong.status == 401
        assert json.loads(wrong.body)["error"]["code"] == "invalid_admin_key"
        # A client key is not the admin key (and the admin key is checked first).
        assert (await admin(gw, "GET", "/v1/cache/stats", key=CLIENT_A)).status == 401
        assert (await admin(gw, "GET", "/v1/cache/stats", key=None)).status == 401
        ok = await admin(gw, "GET", "/v1/cache/stats")
        assert ok.status == 200
        assert json.loads(ok.body)["hits"] == 0
        assert (await admin(gw, "POST", "/v1/cache/stats")).status == 405
        assert (await admin(gw, "DELETE", "/v1/cache/nothex")).status == 404

    run(go())


def test_stats_and_invalidation_by_generation_and_by_key():
    async def go():
        upstream = Upstream()
        gw = gateway(upstream, EDGERELAY_ADMIN_KEY=ADMIN)
        first = await gw.handle(request(body()))
        await whole(first)
        key = header(first, "x-edgerelay-cache-key")
        await whole(await gw.handle(request(body())))
        stats = json.loads((await admin(gw, "GET", "/v1/cache/stats")).body)
        assert (stats["hits"], stats["misses"], stats["hit_rate"], stats["entries"]) == (
            1,
            1,
            0.5,
            1,
        )
        assert stats["bytes"] > 0
        deleted = await admin(gw, "DELETE", f"/v1/cache/{key}")
        assert json.loads(deleted.body) == {"deleted": key, "found": True}
        again = await gw.handle(request(body()))
        await whole(again)
        assert header(again, "x-edgerelay-cache") == "MISS"
        # A namespace's generation moves on: the same request gets a new key.
        wiped = await admin(gw, "DELETE", "/v1/cache", query="namespace=client%3Aanonymous")
        assert wiped.status == 200
        after = await gw.handle(request(body()))
        await whole(after)
        assert header(after, "x-edgerelay-cache") == "MISS"
        assert header(after, "x-edgerelay-cache-key") != key
        everything = await admin(gw, "DELETE", "/v1/cache")
        assert json.loads(everything.body) == {"invalidated": "*"}
        last = await gw.handle(request(body()))
        await whole(last)
        assert header(last, "x-edgerelay-cache") == "MISS"
        assert len(upstream.requests) == 4

    run(go())


def test_cors_exposes_the_cache_headers_and_allows_delete():
    async def go():
        gw = gateway(Upstream())
        response = await gw.handle(request(body(), {"origin": "https://app.example"}))
        await whole(response)
        exposed = header(response, "access-control-expose-headers")
        for name in ("x-edgerelay-cache", "x-edgerelay-cache-key", "age"):
            assert name in exposed
        preflight = await gw.handle(
            request(
                b"",
                {"origin": "https://app.example", "access-control-request-method": "DELETE"},
                path="/v1/cache",
                method="OPTIONS",
            )
        )
        assert "DELETE" in header(preflight, "access-control-allow-methods")

    run(go())


# --- /v1/responses


def responses_body(stream=False, text="cache this response"):
    out = {"model": "mock/echo", "input": text}
    if stream:
        out["stream"] = True
    return json.dumps(out).encode()


def test_responses_through_chat_are_cached_with_their_own_ids():
    from openai.types.responses import Response as ResponsesAnswer
    from openai.types.responses import ResponseCompletedEvent

    async def go():
        gw = gateway(Upstream())
        first = await gw.handle(request(responses_body(), path="/v1/responses"))
        one = ResponsesAnswer.model_validate_json(await whole(first))
        assert header(first, "x-edgerelay-cache") == "MISS"
        second = await gw.handle(request(responses_body(), path="/v1/responses"))
        two = ResponsesAnswer.model_validate_json(await whole(second))
        assert header(second, "x-edgerelay-cache") == "HIT"
        assert header(second, "age") == "0"
        assert two.output_text == one.output_text and one.output_text
        assert two.id != one.id  # each answer is a response of its own
        streamed = await gw.handle(request(responses_body(stream=True), path="/v1/responses"))
        assert header(streamed, "x-edgerelay-cache") == "HIT"
        events = [
            json.loads(line[6:])
            for line in b"".join(await whole(streamed)).split(b"\n")
            if line.startswith(b"data: {")
        ]
        completed = ResponseCompletedEvent.model_validate(events[-1])
        assert completed.response.output_text == one.output_text
        # A chat request that becomes the same chat call is keyed apart (its route differs).
        chat = json.dumps(
            {"model": "mock/echo", "messages": [{"role": "user", "content": "cache this response"}]}
        ).encode()
        as_chat = await gw.handle(request(chat))
        await whole(as_chat)
        assert header(as_chat, "x-edgerelay-cache") == "MISS"
        # previous_response_id still finds the answer given on a hit.
        follow = json.dumps(
            {"model": "mock/echo", "input": "and then", "previous_response_id": two.id}
        ).encode()
        followed = await gw.handle(request(follow, path="/v1/responses"))
        assert followed.status == 200, followed.body


# --- with rate limits


def test_a_cache_hit_counts_as_a_request_and_costs_no_tokens():
    from edgerelay.core.limits import MemoryStore

    policy = "[policies.anonymous]\nrequests_per_minute = 3\ntokens_per_minute = 1000\n"

    async def go():
        upstream = Upstream()
        env = {"OPENAI_API_KEY": KEY, "EDGERELAY_CACHE": "on", "EDGERELAY_CONFIG": policy}
        ids = itertools.count(1)
        gw = Gateway(
            load_config(env),
            upstream,
            clock=Clock(),
            new_id=lambda: f"id{next(ids)}",
            limit_store=MemoryStore(),
        )
        raw = body(max_tokens=100)
        first = await gw.handle(request(raw))
        await whole(first)
        assert header(first, "x-edgerelay-cache") == "MISS"
        # The miss is charged its real usage (3 input + 3 output tokens): 1000 - 6 - 100 left
        # while the next request's reservation stands.
        hit = await gw.handle(request(raw))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        assert header(hit, "x-ratelimit-remaining-tokens") == str(1000 - 6 - 100)
        assert header(hit, "x-ratelimit-remaining-requests") == "1"
        assert hit.log.cache == "HIT"
        await whole(hit)
        third = await gw.handle(request(raw))
        # The hit cost nothing: only the miss's 6 tokens (and this reservation) are counted.
        assert header(third, "x-ratelimit-remaining-tokens") == str(1000 - 6 - 100)
        assert header(third, "x-ratelimit-remaining-requests") == "0"
        await whole(third)
        refused = await gw.handle(request(raw))  # a hit is still a request
        assert refused.status == 429
        assert len(upstream.requests) == 1

    run(go())


def test_with_limits_a_streamed_hit_is_the_bytes_the_client_would_get_without_them():
    # Limits ask the answer for its usage when the client did not; a hit replays the recorded
    # stream in one piece, and what asking added must not reach this client either.
    from edgerelay.core.limits import MemoryStore

    policy = "[policies.anonymous]\ntokens_per_minute = 100000\n"

    async def go():
        def make(env):
            ids = itertools.count(1)
            return Gateway(
                load_config({"OPENAI_API_KEY": KEY, "EDGERELAY_CACHE": "on", **env}),
                Upstream(answer(("Hel", "lo"))),
                clock=Clock(),
                new_id=lambda: f"id{next(ids)}",
                limit_store=MemoryStore(),
            )

        plain, limited = make({}), make({"EDGERELAY_CONFIG": policy})
        for gw in (plain, limited):
            await whole(await gw.handle(request(body(stream=True))))
        hits = [await gw.handle(request(body(stream=True))) for gw in (plain, limited)]
        assert [header(hit, "x-edgerelay-cache") for hit in hits] == ["HIT", "HIT"]
        without, with_limits = [await whole(hit) for hit in hits]
        assert b'"usage"' not in with_limits
        assert with_limits == without

    run(go())
