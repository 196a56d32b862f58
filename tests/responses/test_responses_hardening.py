"""The hardening limits on /v1/responses, each in OpenAI's error shape (or, once a stream has
begun, as ``response.failed``): body size, JSON values, non-finite numbers, item counts, an
upstream's oversized answer or event, 1xx/3xx upstreams; and the stream observer on the route
(hooks see every Responses stream and how it ended)."""

import json

import pytest

from edgerelay.core.observer import StreamEnd, StreamHook
from tests.core.gateway_helpers import call, error_of
from tests.core.test_event_cap import anthropic_stream
from tests.responses.helpers import SSE, gateway, post, streamed
from tests.support import anthropic_wire as wire
from tests.support import responses_oracle as oracle
from tests.support.fake_fetch import FakeResponse

CLAUDE = "anthropic/claude-sonnet-4-5"


def test_a_body_over_the_limit_is_413_naming_the_setting():
    gw, fetch = gateway(EDGERELAY_MAX_BODY_BYTES="200")
    response, _ = post(gw, {"model": "mock/echo", "input": "x" * 300})
    assert response.status == 413
    assert "EDGERELAY_MAX_BODY_BYTES" in error_of(response)["message"]
    assert fetch.requests == []


def test_too_many_json_values_is_400_before_parsing():
    gw, fetch = gateway(EDGERELAY_MAX_REQUEST_VALUES="50")
    body = {"model": CLAUDE, "input": "x", "metadata": {f"k{i}": "v" for i in range(60)}}
    response, _ = post(gw, body)
    assert response.status == 400
    error = error_of(response)
    assert error["code"] == "too_many_values" and "EDGERELAY_MAX_REQUEST_VALUES" in error["message"]
    assert fetch.requests == []


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"1e400"])
def test_a_non_finite_number_is_a_400_naming_the_field(number):
    gw, fetch = gateway()
    raw = b'{"model": "' + CLAUDE.encode() + b'", "input": "x", "temperature": ' + number + b"}"
    response, _ = post(gw, raw)
    assert response.status == 400
    assert error_of(response)["param"] == "temperature"
    assert fetch.requests == []


def test_more_input_items_than_max_messages_is_a_400_naming_input():
    gw, fetch = gateway(EDGERELAY_MAX_MESSAGES="3")
    items = [{"role": "user", "content": "x"}] * 4
    response, _ = post(gw, {"model": CLAUDE, "input": items})
    assert response.status == 400
    error = error_of(response)
    assert (error["param"], error["code"]) == ("input", "too_many_messages")
    assert "EDGERELAY_MAX_MESSAGES" in error["message"]
    assert fetch.requests == []


def test_a_chain_of_previous_responses_past_max_messages_is_a_400_naming_input():
    gw, _ = gateway(EDGERELAY_MAX_MESSAGES="3")
    items = [{"role": "user", "content": "x"}] * 2
    first = oracle.response(post(gw, {"model": "mock/echo", "input": items})[0].body)
    body = {"model": "mock/echo", "input": "more", "previous_response_id": first.id}
    response, _ = post(gw, body)
    assert response.status == 400
    assert error_of(response)["param"] == "input"


def test_an_answer_past_the_response_limit_is_502_and_reading_stops():
    answer = FakeResponse(200, {"content-type": "application/json"}, [b"x" * 1000] * 50)
    gw, _ = gateway(lambda request: answer, EDGERELAY_MAX_RESPONSE_BYTES="4096")
    response, _ = post(gw, {"model": CLAUDE, "input": "hi"})
    assert response.status == 502
    error = error_of(response)
    assert error["code"] == "response_too_large"
    assert answer.read_chunks == 5 and answer.closed


def test_an_oversized_upstream_event_ends_the_stream_with_response_failed():
    upstream = FakeResponse(200, SSE, anthropic_stream(100))
    gw, _ = gateway(lambda request: upstream, EDGERELAY_MAX_EVENT_BYTES="8192")
    response, chunks = post(gw, {"model": CLAUDE, "input": "hi", "stream": True})
    events = oracle.events(b"".join(chunks))
    assert [e.type for e in events[-2:]] == ["error", "response.failed"]
    assert "EDGERELAY_MAX_EVENT_BYTES" in events[-1].response.error.message
    assert upstream.read_chunks < 20 and upstream.closed
    assert response.failure is not None  # Lambda's loop flags it out of band too


def test_an_oversized_upstream_event_through_the_cache_ends_with_response_failed():
    import asyncio

    from edgerelay.core import Request

    async def go():
        upstream = FakeResponse(200, SSE, anthropic_stream(100))
        gw, _ = gateway(
            lambda request: upstream, EDGERELAY_MAX_EVENT_BYTES="8192", EDGERELAY_CACHE="on"
        )
        body = json.dumps({"model": CLAUDE, "input": "hi", "stream": True}).encode()
        response = await gw.handle(Request("POST", "/v1/responses", "", {}, body))
        raw = b"".join([chunk async for chunk in response.stream])
        await response.aclose()
        events = oracle.events(raw)
        assert events[-1].type == "response.failed"
        assert "EDGERELAY_MAX_EVENT_BYTES" in events[-1].response.error.message
        assert upstream.read_chunks < 20 and upstream.closed

    asyncio.run(asyncio.wait_for(go(), 10))


@pytest.mark.parametrize("status", [101, 304])
@pytest.mark.parametrize("model", [CLAUDE, "openai/gpt-4.1"])
def test_an_informational_or_redirect_upstream_status_is_502(status, model):
    upstream = FakeResponse(status, {}, [b""])
    gw, _ = gateway(lambda request: upstream)
    response, _ = post(gw, {"model": model, "input": "hi"})
    assert response.status == 502 and upstream.closed


class Recorder(StreamHook):
    def __init__(self, protocol) -> None:
        self.protocol = protocol
        self.seen = b""
        self.ends: list[StreamEnd] = []

    def on_events(self, data: bytes) -> None:
        self.seen += data

    def on_end(self, end: StreamEnd) -> None:
        self.ends.append(end)


def hooked(handler):
    gw, _ = gateway(handler)
    recorders: list[Recorder] = []

    def factory(protocol):
        recorders.append(Recorder(protocol))
        return recorders[-1]

    gw.stream_hooks = (factory,)
    return gw, recorders


def test_the_observers_hooks_see_a_translated_responses_stream_and_its_end():
    gw, recorders = hooked(lambda r: FakeResponse(200, SSE, [wire.text_stream("Hello there")]))
    _, raw = streamed(gw, {"model": CLAUDE, "input": "hi"})
    (recorder,) = recorders
    assert recorder.protocol == "responses"
    assert recorder.seen == raw
    assert [end.reason for end in recorder.ends] == ["complete"]


def test_the_observers_hooks_see_a_broken_stream_end_as_an_error():
    # Cut after the first content (a stream that breaks before any content is retried).
    full = wire.text_stream("Hello there")
    upstream = FakeResponse(200, SSE, [full[: full.index(b"content_block_stop")]], error_after=1)
    gw, recorders = hooked(lambda r: upstream)
    _, chunks = post(gw, {"model": CLAUDE, "input": "hi", "stream": True})
    events = oracle.events(b"".join(chunks))
    assert events[-1].type == "response.failed" and "broke off" in events[-1].response.error.message
    (recorder,) = recorders
    assert recorder.ends[0].reason == "upstream_error"  # the error event went out, then failed
    assert recorder.seen == b"".join(chunks)


def test_the_observer_watches_a_passed_through_openai_stream():
    done = b'event: response.completed\ndata: {"type":"response.completed","sequence_number":0}\n\n'
    gw, recorders = hooked(lambda r: FakeResponse(200, SSE, [done[:30], done[30:]]))
    response, chunks = post(gw, {"model": "openai/gpt-4.1", "input": "hi", "stream": True})
    assert b"".join(chunks) == done and response.observer is not None
    (recorder,) = recorders
    assert recorder.protocol == "responses" and recorder.seen == done
    assert [end.reason for end in recorder.ends] == ["complete"]


def test_json_answers_have_no_observer():
    gw, recorders = hooked(None)
    response, _ = call(gw, "POST", "/v1/responses", {"model": "mock/echo", "input": "hi"})
    assert response.status == 200 and response.observer is None and recorders == []
    assert json.loads(response.body)["status"] == "completed"
