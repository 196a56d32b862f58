"""The response cache end to end: the real server on uvicorn with its in-memory store, a loopback
fake OpenAI upstream, and the official openai SDK reading every answer (first and replayed,
streamed and not), with the cache headers readable from a browser origin."""

import json

import httpx
import openai

from tests.support.cache_wire import answer, text_of_chunks
from tests.support.loopback import WAIT, Reply, sse_frames

SSE = {"content-type": "text/event-stream; charset=utf-8"}
ADMIN = "admin-key-for-server-tests-0123"


def env_for(upstream, **extra):
    return {
        "OPENAI_BASE_URL": upstream.url + "/v1",
        "OPENAI_API_KEY": "sk-up",
        "EDGERELAY_CACHE": "on",
        "EDGERELAY_ADMIN_KEY": ADMIN,
        **extra,
    }


def client_for(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


MESSAGES = [{"role": "user", "content": "hi"}]


def test_stream_first_then_json_and_stream_replays_with_the_sdk(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, SSE, answer(("Hel", "lo", " there")))
    gateway = gateway_for(env_for(upstream))
    client = client_for(gateway)

    first = client.chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", messages=MESSAGES, stream=True
    )
    assert first.headers["x-edgerelay-cache"] == "MISS"
    key = first.headers["x-edgerelay-cache-key"]
    chunks = list(first.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello there"
    sent = json.loads(upstream.seen[0].body)
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}

    as_json = client.chat.completions.with_raw_response.create(
        model="gpt-4.1-mini", messages=MESSAGES
    )
    assert as_json.headers["x-edgerelay-cache"] == "HIT"
    assert as_json.headers["x-edgerelay-cache-key"] == key
    assert int(as_json.headers["age"]) >= 0
    completion = as_json.parse()
    assert completion.choices[0].message.content == "Hello there"
    assert completion.usage.total_tokens == 6

    replayed = client.chat.completions.with_raw_response.create(
        model="gpt-4.1-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    assert replayed.headers["x-edgerelay-cache"] == "HIT"
    again = list(replayed.parse())
    pieces = [c.choices[0].delta.content for c in again if c.choices and c.choices[0].delta.content]
    assert pieces == ["Hel", "lo", " there"]  # the original split
    assert again[-1].usage.total_tokens == 6  # asked for: the usage chunk comes last
    assert len(upstream.seen) == 1


def test_json_first_then_a_progressive_stream_replay(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, SSE, answer(("One", " two", " three")))
    gateway = gateway_for(env_for(upstream))
    client = client_for(gateway)
    completion = client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == "One two three"
    body = {"model": "gpt-4.1-mini", "messages": MESSAGES, "stream": True}
    origin = {"origin": "https://app.example"}
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, headers=origin, timeout=WAIT
    ) as raw:
        assert raw.headers["x-edgerelay-cache"] == "HIT"
        exposed = raw.headers["access-control-expose-headers"]
        assert all(h in exposed for h in ("x-edgerelay-cache", "x-edgerelay-cache-key", "age"))
        frames = list(sse_frames(raw))
    assert frames[-1] == b"data: [DONE]"
    assert text_of_chunks([f + b"\n\n" for f in frames]) == ["One", " two", " three"]
    assert b'"usage"' not in b"".join(frames)  # not asked for
    assert len(upstream.seen) == 1


def test_admin_routes_on_the_server(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, SSE, answer())
    gateway = gateway_for(env_for(upstream))
    client = client_for(gateway)
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    admin = {"authorization": f"Bearer {ADMIN}"}
    with httpx.Client(base_url=gateway.url, timeout=WAIT) as http:
        stats = http.get("/v1/cache/stats", headers=admin).json()
        assert (stats["hits"], stats["misses"], stats["entries"]) == (1, 1, 1)
        assert http.get("/v1/cache/stats").status_code == 401
        assert http.delete("/v1/cache", headers=admin).status_code == 200
    client.chat.completions.create(model="gpt-4.1-mini", messages=MESSAGES)
    assert len(upstream.seen) == 2
