"""The response cache for /v1/responses passed through to OpenAI's own Responses endpoint,
through the real Gateway (core) over a fake upstream on CPython's event loop: miss and hit
with their headers, stream→JSON and JSON→stream replays (validated with the openai SDK's own
models), what is never stored, the key's rules, each client's own echoed fields, one upstream
call for concurrent identical requests (lock-step, no sleeps) and a hit under limits."""

from __future__ import annotations

import asyncio
import itertools
import json

from openai.types.responses import Response as SDKResponse
from openai.types.responses import ResponseStreamEvent
from pydantic import TypeAdapter

from edgerelay.core import Gateway, load_config
from tests.cache.test_gateway_cache import (
    KEY,
    Clock,
    Upstream,
    flight_task,
    gateway,
    header,
    request,
    run,
    whole,
)
from tests.support import responses_wire as wire

EVENTS = TypeAdapter(ResponseStreamEvent)


def body(stream=False, text="hi", **extra):
    out = {"model": "gpt-4.1-mini", "input": text, **extra}
    if stream:
        out["stream"] = True
    return json.dumps(out).encode()


def ask(raw, headers=None):
    return request(raw, headers, path="/v1/responses")


def events_of(data: bytes) -> list:
    """The SDK's typed events of a Responses stream."""
    out = []
    for line in data.split(b"\n"):
        if line.startswith(b"data: {"):
            out.append(EVENTS.validate_json(line[6:]))
    return out


def joined(data) -> bytes:
    return data if isinstance(data, bytes) else b"".join(data)


# --- miss and hit


def test_stream_miss_then_json_and_stream_hits_with_headers():
    async def go():
        upstream = Upstream(wire.answer(("Hel", "lo", " there")))
        clock = Clock()
        gw = gateway(upstream, clock)
        first = await gw.handle(ask(body(stream=True)))
        assert header(first, "x-edgerelay-cache") == "MISS"
        key = header(first, "x-edgerelay-cache-key")
        assert key and len(key) == 64
        live = joined(await whole(first))
        assert wire.text_of([live]) == ["Hel", "lo", " there"]
        assert upstream.requests[0].url.endswith("/responses")
        assert json.loads(upstream.requests[0].body)["stream"] is True

        clock.now += 5
        as_json = await gw.handle(ask(body()))
        assert header(as_json, "x-edgerelay-cache") == "HIT"
        assert header(as_json, "x-edgerelay-cache-key") == key
        assert header(as_json, "age") == "5"
        answer = SDKResponse.model_validate_json(await whole(as_json))
        assert answer.output_text == "Hello there"
        assert answer.status == "completed"
        assert answer.usage.total_tokens == 5
        assert answer.id == "resp_up1"  # the id the upstream gave (and stored)

        replayed = await gw.handle(ask(body(stream=True)))
        assert header(replayed, "x-edgerelay-cache") == "HIT"
        assert replayed.stream is None  # all here: one write
        data = await whole(replayed)
        assert data == live  # the same events, the same text split
        typed = events_of(data)
        assert typed[0].type == "response.created" and typed[-1].type == "response.completed"
        assert typed[-1].response.id == "resp_up1"
        assert len(upstream.requests) == 1

    run(go())


def test_json_miss_is_fetched_streamed_then_replayed_as_a_stream():
    async def go():
        upstream = Upstream(wire.answer(("One", " two", " three")))
        gw = gateway(upstream)
        first = await gw.handle(ask(body(metadata={"page": "demo"})))
        assert header(first, "x-edgerelay-cache") == "MISS"
        assert json.loads(upstream.requests[0].body)["stream"] is True
        answer = SDKResponse.model_validate_json(await whole(first))
        assert answer.output_text == "One two three"
        assert answer.metadata == {"page": "demo"}  # its own echo
        # stream, store and metadata are not part of the key
        hit = await gw.handle(ask(body(stream=True, store=True)))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        data = await whole(hit)
        assert wire.text_of([data]) == ["One", " two", " three"]
        assert [e.sequence_number for e in events_of(data)] == list(range(11))
        assert len(upstream.requests) == 1

    run(go())


def test_an_incomplete_answer_at_its_output_limit_is_complete():
    async def go():
        upstream = Upstream(wire.answer(("cut", " short"), end="response.incomplete"))
        gw = gateway(upstream)
        await whole(await gw.handle(ask(body(stream=True, max_output_tokens=16))))
        hit = await gw.handle(ask(body(max_output_tokens=16)))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        answer = SDKResponse.model_validate_json(await whole(hit))
        assert answer.status == "incomplete"
        assert answer.incomplete_details.reason == "max_output_tokens"
        assert answer.output_text == "cut short"
        assert len(upstream.requests) == 1

    run(go())


def test_a_bypassed_request_is_sent_as_asked():
    async def go():
        upstream = Upstream(wire.answer())
        gw = gateway(upstream)
        response = await gw.handle(ask(body(stream=True), {"x-edgerelay-cache": "off"}))
        await whole(response)
        assert header(response, "x-edgerelay-cache") == "BYPASS"
        assert header(response, "x-edgerelay-cache-key") is None
        refreshed = await gw.handle(ask(body(stream=True), {"x-edgerelay-cache": "refresh"}))
        await whole(refreshed)
        assert header(refreshed, "x-edgerelay-cache") == "REFRESH"
        hit = await gw.handle(ask(body()))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        assert header(hit, "x-edgerelay-cache-key") == header(refreshed, "x-edgerelay-cache-key")
        assert len(upstream.requests) == 2

    run(go())


# --- never stored


def test_a_failed_response_is_not_stored_and_the_json_client_gets_a_502():
    async def go():
        upstream = Upstream(wire.failed())
        gw = gateway(upstream)
        streamed = joined(await whole(await gw.handle(ask(body(stream=True)))))
        assert events_of(streamed)[-1].type == "response.failed"
        refused = await gw.handle(ask(body()))
        assert refused.status == 502
        assert json.loads(await whole(refused))["error"]["message"] == "The model broke down."
        assert len(upstream.requests) == 2

    run(go())


def test_an_error_event_is_not_stored():
    async def go():
        error = wire.event("error", 5, code="server_error", message="Overloaded.", param=None)
        upstream = Upstream([*wire.answer()[:5], error])
        gw = gateway(upstream)
        await whole(await gw.handle(ask(body(stream=True))))
        refused = await gw.handle(ask(body()))
        assert refused.status == 502
        assert json.loads(await whole(refused))["error"]["message"] == "Overloaded."
        assert len(upstream.requests) == 2

    run(go())


def test_a_cut_stream_is_not_stored():
    async def go():
        upstream = Upstream(wire.answer(), error_after=6)  # the connection breaks off
        gw = gateway(upstream)
        data = joined(await whole(await gw.handle(ask(body(stream=True)))))
        assert events_of(data)[-1].type == "response.failed"  # the gateway's own ending
        await whole(await gw.handle(ask(body(stream=True))))
        assert len(upstream.requests) == 2
        ended = Upstream(wire.answer()[:-1])  # no lifecycle end at all
        gw2 = gateway(ended)
        for _ in range(2):
            await whole(await gw2.handle(ask(body(stream=True))))
        assert len(ended.requests) == 2

    run(go())


def test_an_abandoned_stream_is_cancelled_and_not_stored():
    async def go():
        upstream = Upstream(wire.answer(), gated=True)
        gw = gateway(upstream)
        response = await gw.handle(ask(body(stream=True)))
        upstream.release()
        assert b"response.created" in await response.stream.__anext__()
        task = flight_task(gw)
        await response.aclose()  # the client left
        await asyncio.wait([task])
        assert task.cancelled() and upstream.responses[0].closed
        upstream.gated = False
        again = await gw.handle(ask(body(stream=True)))
        await whole(again)
        assert header(again, "x-edgerelay-cache") == "MISS"

    run(go())


# --- the key


def test_the_key_leaves_out_what_does_not_change_the_answer():
    async def go():
        upstream = Upstream(wire.answer())
        gw = gateway(upstream)
        first = await gw.handle(ask(body(stream=True, user="u1", safety_identifier="s1")))
        await whole(first)
        key = header(first, "x-edgerelay-cache-key")
        same = [
            body(stream_options={"include_obfuscation": False}, stream=True),
            body(metadata={"k": "v"}, user="u2", safety_identifier="s2"),
        ]
        for raw in same:
            hit = await gw.handle(ask(raw))
            await whole(hit)
            assert header(hit, "x-edgerelay-cache-key") == key
        differ = [
            body(text="other"),
            body(temperature=0.5),
            body(previous_response_id="resp_before"),
            # An answer kept upstream has an id a later previous_response_id can name; one
            # asked with store: false has not: they are different entries.
            body(store=False),
        ]
        for raw in differ:
            miss = await gw.handle(ask(raw))
            await whole(miss)
            assert header(miss, "x-edgerelay-cache") == "MISS"
            assert header(miss, "x-edgerelay-cache-key") != key
        again = await gw.handle(ask(body(previous_response_id="resp_before")))
        await whole(again)
        assert header(again, "x-edgerelay-cache") == "HIT"  # the id names one fixed chain
        assert len(upstream.requests) == 1 + len(differ)

    run(go())


def test_each_client_gets_its_own_echoed_fields_never_another_ones():
    async def go():
        echo = {"user": "alice", "safety_identifier": "sid-alice", "metadata": {"who": "alice"}}
        upstream = Upstream(wire.answer(**echo))
        gw = gateway(upstream)
        mine = await gw.handle(ask(body(stream=True, **echo)))
        assert b"alice" in joined(await whole(mine))  # the leader's own stream, as it came
        anonymous = await gw.handle(ask(body()))
        data = await whole(anonymous)
        assert header(anonymous, "x-edgerelay-cache") == "HIT"
        assert b"alice" not in data
        answer = SDKResponse.model_validate_json(data)
        assert answer.user is None and answer.metadata == {}
        bob = {"user": "bob", "safety_identifier": "sid-bob", "metadata": {"who": "bob"}}
        streamed = await whole(await gw.handle(ask(body(stream=True, **bob))))
        assert b"alice" not in streamed
        typed = events_of(streamed)
        for event in (typed[0], typed[1], typed[-1]):
            assert event.response.user == "bob" and event.response.metadata == {"who": "bob"}
            assert event.response.safety_identifier == "sid-bob"
        assert wire.text_of([streamed]) == ["Hel", "lo", " there"]
        as_json = SDKResponse.model_validate_json(await whole(await gw.handle(ask(body(**bob)))))
        assert as_json.user == "bob" and as_json.output_text == "Hello there"
        assert len(upstream.requests) == 1

    run(go())


# --- one upstream call per key


def test_concurrent_identical_requests_make_one_call_with_progressive_replay():
    async def go():
        chunks = wire.answer(("a", "b", "c"))
        upstream = Upstream(chunks, gated=True)
        gw = gateway(upstream)
        streams = [await gw.handle(ask(body(stream=True))) for _ in range(2)]
        other = await gw.handle(ask(body(stream=True, user="carol")))
        streams.append(other)
        plain = asyncio.ensure_future(gw.handle(ask(body())))
        statuses = [header(s, "x-edgerelay-cache") for s in streams]
        assert statuses == ["MISS", "HIT", "HIT"]
        readers = [s.stream for s in streams]
        received: list[list[bytes]] = [[] for _ in readers]
        # Lock-step: event k+1 leaves the upstream only once every client has read event k.
        for k in range(len(chunks)):
            upstream.release()
            for i, reader in enumerate(readers):
                received[i].append(await reader.__anext__())
            assert upstream.responses[0].sent == k + 1
        for s in streams:
            assert [c async for c in s.stream] == []
            await s.aclose()
        assert received[1] == received[0]
        assert wire.text_of(received[2]) == ["a", "b", "c"]
        assert events_of(b"".join(received[2]))[-1].response.user == "carol"
        answer = SDKResponse.model_validate_json(await whole(await plain))
        assert answer.output_text == "abc"
        assert len(upstream.requests) == 1

    run(go())


def test_the_call_is_cancelled_only_when_the_last_waiter_leaves():
    async def go():
        upstream = Upstream(wire.answer(), gated=True)
        gw = gateway(upstream)
        one = await gw.handle(ask(body(stream=True)))
        two = await gw.handle(ask(body(stream=True)))
        upstream.release()
        await one.stream.__anext__()
        await two.stream.__anext__()
        task = flight_task(gw)
        await one.aclose()
        assert not upstream.responses[0].closed  # the other waiter still reads it
        upstream.release()
        assert b"response.in_progress" in await two.stream.__anext__()
        await two.aclose()
        await asyncio.wait([task])
        assert task.cancelled() and upstream.responses[0].closed

    run(go())


# --- with rate limits


def test_a_hit_counts_as_a_request_and_costs_no_tokens():
    from edgerelay.core.limits import MemoryStore

    policy = "[policies.anonymous]\nrequests_per_minute = 3\ntokens_per_minute = 1000\n"

    async def go():
        upstream = Upstream(wire.answer())
        env = {"OPENAI_API_KEY": KEY, "EDGERELAY_CACHE": "on", "EDGERELAY_CONFIG": policy}
        ids = itertools.count(1)
        gw = Gateway(
            load_config(env),
            upstream,
            clock=Clock(),
            new_id=lambda: f"id{next(ids)}",
            limit_store=MemoryStore(),
        )
        raw = body(max_output_tokens=100)
        first = await gw.handle(ask(raw))
        await whole(first)
        assert header(first, "x-edgerelay-cache") == "MISS"
        # The miss is charged its usage (5 tokens): 1000 - 5 - 100 left while the next
        # request's reservation stands.
        hit = await gw.handle(ask(raw))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        assert header(hit, "x-ratelimit-remaining-tokens") == str(1000 - 5 - 100)
        assert header(hit, "x-ratelimit-remaining-requests") == "1"
        await whole(hit)
        third = await gw.handle(ask(body(stream=True, max_output_tokens=100)))
        assert header(third, "x-edgerelay-cache") == "HIT"
        assert header(third, "x-ratelimit-remaining-tokens") == str(1000 - 5 - 100)
        await whole(third)
        refused = await gw.handle(ask(raw))  # a hit is still a request
        assert refused.status == 429
        assert len(upstream.requests) == 1

    run(go())


def test_a_bypassed_request_goes_upstream_byte_for_byte():
    async def go():
        upstream = Upstream(wire.answer())
        gw = gateway(upstream)
        raw = b'{ "model": "gpt-4.1-mini",  "input": "as sent", "stream": true }'
        response = await gw.handle(ask(raw, {"x-edgerelay-cache": "off"}))
        await whole(response)
        assert header(response, "x-edgerelay-cache") == "BYPASS"
        assert upstream.requests[0].body == raw  # as without the cache

    run(go())


def test_the_key_holds_the_body_as_the_policy_caps_it():
    async def go():
        upstream = Upstream(wire.answer())
        gw = gateway(upstream, EDGERELAY_CONFIG="[policies.anonymous]\nmax_tokens = 50\n")
        first = await gw.handle(ask(body(max_output_tokens=500)))
        await whole(first)
        assert json.loads(upstream.requests[0].body)["max_output_tokens"] == 50
        # Asking for 50 is the same request once the policy capped the first one.
        second = await gw.handle(ask(body(max_output_tokens=50)))
        await whole(second)
        assert header(second, "x-edgerelay-cache") == "HIT"
        assert header(second, "x-edgerelay-cache-key") == header(first, "x-edgerelay-cache-key")
        assert len(upstream.requests) == 1

    run(go())


def test_a_fallback_through_chat_answers_the_flight_and_is_stored():
    from tests.support import anthropic_wire
    from tests.support.fake_fetch import FakeFetch, FakeResponse

    chain = '[aliases.smart]\ntargets = ["openai/gpt-4.1", "anthropic/claude-sonnet-4-5"]\n'

    def handler(sent):
        if "anthropic" in sent.url:
            return FakeResponse(200, {"content-type": "text/event-stream"}, [
                anthropic_wire.text_stream("from", " claude")
            ])  # fmt: skip
        return FakeResponse(503, {"content-type": "application/json"}, [b'{"error":{}}'])

    async def go():
        fetch = FakeFetch(handler)
        env = {
            "OPENAI_API_KEY": KEY,
            "ANTHROPIC_API_KEY": "sk-ant",
            "EDGERELAY_CACHE": "on",
            "EDGERELAY_RETRIES": "0",
            "EDGERELAY_CONFIG": chain,
        }
        ids = itertools.count(1)
        gw = Gateway(load_config(env), fetch, clock=Clock(), new_id=lambda: f"id{next(ids)}")
        raw = json.dumps({"model": "smart", "input": "hi"}).encode()
        first = await gw.handle(ask(raw))
        assert header(first, "x-edgerelay-cache") == "MISS"
        assert header(first, "x-edgerelay-target") == "anthropic/claude-sonnet-4-5"
        answer = SDKResponse.model_validate_json(await whole(first))
        assert answer.output_text == "from claude"
        hit = await gw.handle(ask(raw))
        assert header(hit, "x-edgerelay-cache") == "HIT"
        assert SDKResponse.model_validate_json(await whole(hit)).output_text == "from claude"
        assert [r.url.rpartition("/")[2] for r in fetch.requests] == ["responses", "messages"]

    run(go())
