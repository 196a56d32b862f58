"""The response cache for /v1/responses passed through to OpenAI's own Responses endpoint, end
to end: the real server on uvicorn with its in-memory store, a loopback fake OpenAI upstream
speaking the Responses API, and the official openai SDK's ``client.responses.create`` reading
every answer (first and replayed, streamed and not)."""

import json

import httpx
import openai

from tests.support import responses_wire as wire
from tests.support.loopback import WAIT, Reply, sse_frames

SSE = {"content-type": "text/event-stream; charset=utf-8"}


def env_for(upstream, **extra):
    return {
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-up",
        "EDGERELAY_CACHE": "on",
        "EDGERELAY_RETRIES": "0",
        **extra,
    }


def client_for(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def test_stream_first_then_json_and_stream_replays_with_the_sdk(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, SSE, wire.answer(("Hel", "lo", " there")))
    client = client_for(gateway_for(env_for(upstream)))

    first = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="hi", stream=True)
    assert first.headers["x-edgerelay-cache"] == "MISS"
    key = first.headers["x-edgerelay-cache-key"]
    events = list(first.parse())
    deltas = [e.delta for e in events if e.type == "response.output_text.delta"]
    assert deltas == ["Hel", "lo", " there"]
    assert upstream.seen[0].path == "/v1/responses"
    assert json.loads(upstream.seen[0].body)["stream"] is True

    as_json = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="hi")
    assert as_json.headers["x-edgerelay-cache"] == "HIT"
    assert as_json.headers["x-edgerelay-cache-key"] == key
    assert int(as_json.headers["age"]) >= 0
    response = as_json.parse()
    assert response.output_text == "Hello there"
    assert response.id == events[-1].response.id == "resp_up1"
    assert response.usage.total_tokens == 5

    replayed = client.responses.with_raw_response.create(
        model="gpt-4.1-mini", input="hi", stream=True
    )
    assert replayed.headers["x-edgerelay-cache"] == "HIT"
    again = list(replayed.parse())
    assert [e.type for e in again] == [e.type for e in events]
    assert [e.delta for e in again if e.type == "response.output_text.delta"] == deltas
    assert again[-1].response.output_text == "Hello there"
    assert len(upstream.seen) == 1


def test_json_first_then_a_stream_replay_read_by_a_browser(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, SSE, wire.answer(("One", " two", " three")))
    gateway = gateway_for(env_for(upstream))
    client = client_for(gateway)
    response = client.responses.create(model="gpt-4.1-mini", input="x", user="visitor-1")
    assert response.output_text == "One two three"
    assert response.user == "visitor-1"
    assert json.loads(upstream.seen[0].body)["stream"] is True

    body = {"model": "gpt-4.1-mini", "input": "x", "stream": True}
    origin = {"origin": "https://app.example"}
    with httpx.stream(
        "POST", gateway.url + "/v1/responses", json=body, headers=origin, timeout=WAIT
    ) as raw:
        assert raw.headers["x-edgerelay-cache"] == "HIT"
        exposed = raw.headers["access-control-expose-headers"]
        assert all(h in exposed for h in ("x-edgerelay-cache", "x-edgerelay-cache-key", "age"))
        frames = list(sse_frames(raw))
    data = b"\n\n".join(frames) + b"\n\n"
    assert wire.text_of([data]) == ["One", " two", " three"]
    assert b"visitor-1" not in data  # the first client's echo stays its own
    assert len(upstream.seen) == 1


def test_failed_and_cut_streams_are_not_stored(upstream, gateway_for):
    replies = iter(
        [
            Reply(200, SSE, wire.failed()),
            Reply(200, SSE, wire.answer(), cut_after=5),
            Reply(200, SSE, wire.answer(("fine",))),
        ]
    )
    upstream.handler = lambda seen: next(replies)
    client = client_for(gateway_for(env_for(upstream)))
    failed = list(client.responses.create(model="gpt-4.1-mini", input="q", stream=True))
    assert failed[-1].type == "response.failed"
    cut = list(client.responses.create(model="gpt-4.1-mini", input="q", stream=True))
    assert cut[-1].type == "response.failed"  # the gateway ends a broken stream so
    fresh = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="q")
    assert fresh.headers["x-edgerelay-cache"] == "MISS"
    assert fresh.parse().output_text == "fine"
    hit = client.responses.with_raw_response.create(model="gpt-4.1-mini", input="q")
    assert hit.headers["x-edgerelay-cache"] == "HIT"
    assert len(upstream.seen) == 3
