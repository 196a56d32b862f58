"""Limits through Gateway.handle: refusals before any upstream call in the route's shape, the
gateway's rate-limit headers instead of the provider's, usage settled from answers and streams,
include_usage added upstream and removed for the client, stream slots released on every end."""

from __future__ import annotations

import itertools
import json

from edgerelay.core import Gateway, Request, load_config
from edgerelay.core.limits import MemoryStore
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeFetch, FakeResponse

T0 = 1_760_000_040.0
OPENAI = {"OPENAI_API_KEY": "sk-owner", "ANTHROPIC_API_KEY": "sk-ant-owner"}
CHAT = {"model": "gpt-4.1", "messages": [{"role": "user", "content": "hi"}]}
SSE = {"content-type": "text/event-stream"}


def toml(policy: str, extra: str = "") -> str:
    return f"[policies.anonymous]\n{policy}\n{extra}"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def gateway(policy, handler, store=None, extra="", env=None):
    env = {**OPENAI, "EDGERELAY_CONFIG": toml(policy, extra), **(env or {})}
    ids = itertools.count(1)
    fetch = FakeFetch(handler)
    clock = Clock()
    gw = Gateway(
        load_config(env),
        fetch,
        clock=clock,
        new_id=lambda: f"id{next(ids)}",
        limit_store=MemoryStore() if store is None else store,
    )
    return gw, fetch


def send(gw, body, ip="198.51.100.7", headers=None):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = Request("POST", "/v1/chat/completions", "", headers or {}, raw, client_ip=ip)
    return drive(gw.handle(request))


def finish(response):
    chunks = collect(response.stream) if response.stream is not None else None
    drive(response.aclose())
    return chunks


def chunk(content, usage=None, choices=True, with_usage_field=False):
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4.1"}
    body["choices"] = [{"index": 0, "delta": {"content": content}}] if choices else []
    if usage is not None or with_usage_field:
        body["usage"] = usage
    return ("data: " + json.dumps(body, separators=(",", ":")) + "\n\n").encode()


def answer(usage):
    body = {"id": "x", "object": "chat.completion", "choices": [], "usage": usage}
    return json.dumps(body).encode()


def openai_json(usage, headers=None):
    return lambda request: FakeResponse(
        200, {"content-type": "application/json", **(headers or {})}, [answer(usage)]
    )


def test_the_limit_refuses_before_the_upstream_in_openais_shape():
    gw, fetch = gateway("requests_per_minute = 2", openai_json({"prompt_tokens": 1}))
    for _ in range(2):
        response = send(gw, CHAT)
        assert response.status == 200
        finish(response)
    refused = send(gw, CHAT)
    assert refused.status == 429
    error = json.loads(refused.body)["error"]
    assert error["code"] == "rate_limit_exceeded" and error["type"] == "requests"
    got = dict(refused.headers)
    # Sliding: after the minute rolls (60 s) its 2 requests must weigh <= 1: 30 s more.
    assert got["retry-after"] == "90"
    assert got["x-ratelimit-remaining-requests"] == "0"
    assert len(fetch.requests) == 2


def test_the_gateways_headers_replace_the_providers():
    upstream = {"x-ratelimit-remaining-requests": "9999", "anthropic-ratelimit-tokens-limit": "1"}
    gw, _ = gateway(
        "requests_per_minute = 5\ntokens_per_minute = 1000",
        openai_json({"prompt_tokens": 3, "completion_tokens": 4}, upstream),
    )
    response = send(gw, {**CHAT, "max_tokens": 100})
    finish(response)
    got = dict(response.headers)
    assert got["x-ratelimit-limit-requests"] == "5"
    assert got["x-ratelimit-remaining-requests"] == "4"
    assert got["x-ratelimit-remaining-tokens"] == "900"  # the reservation
    assert got["x-ratelimit-reset-requests"].endswith("s")
    assert "anthropic-ratelimit-tokens-limit" not in got
    assert [k for k, _ in response.headers].count("x-ratelimit-remaining-requests") == 1
    # Settled to the 7 tokens used: the next answer shows it.
    response = send(gw, {**CHAT, "max_tokens": 100})
    finish(response)
    assert dict(response.headers)["x-ratelimit-remaining-tokens"] == str(1000 - 7 - 100)


def test_an_unlimited_policy_keeps_the_providers_headers():
    env_policy = "models = ['*']"  # a policy without limit keys
    gw, _ = gateway(env_policy, openai_json({}, {"x-ratelimit-remaining-requests": "9"}))
    response = send(gw, CHAT)
    finish(response)
    assert dict(response.headers)["x-ratelimit-remaining-requests"] == "9"


def test_include_usage_is_added_upstream_and_the_client_gets_the_same_bytes():
    words = ["Hel", "lo", "!"]
    with_usage = [chunk(w, with_usage_field=True) for w in words]
    with_usage.append(chunk(None, {"prompt_tokens": 5, "completion_tokens": 3}, choices=False))
    with_usage.append(b"data: [DONE]\n\n")
    without = b"".join(chunk(w) for w in words) + b"data: [DONE]\n\n"

    def upstream(request):
        sent = json.loads(request.body)
        assert sent["stream_options"] == {"include_usage": True}
        return FakeResponse(200, SSE, with_usage)

    gw, _ = gateway("tokens_per_minute = 1000", upstream)
    response = send(gw, {**CHAT, "stream": True, "max_tokens": 50})
    assert b"".join(finish(response)) == without
    nxt = send(gw, {**CHAT, "stream": True, "max_tokens": 50})
    assert dict(nxt.headers)["x-ratelimit-remaining-tokens"] == str(1000 - 8 - 50)
    finish(nxt)


def test_a_client_that_asked_for_usage_gets_its_request_and_answer_untouched():
    stream = [
        chunk("a", with_usage_field=True),
        chunk(None, {"prompt_tokens": 2}, choices=False),
        b"data: [DONE]\n\n",
    ]
    gw, fetch = gateway("tokens_per_minute = 1000", lambda r: FakeResponse(200, SSE, stream))
    raw = json.dumps(
        {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 9},
        indent=1,
    ).encode()
    response = send(gw, raw)
    assert b"".join(finish(response)) == b"".join(stream)
    assert fetch.requests[0].body == raw  # byte for byte


def test_without_limits_the_relay_is_byte_identical():
    stream = [chunk("a"), b"data: [DONE]\n\n"]
    gw, fetch = gateway("models = ['*']", lambda r: FakeResponse(200, SSE, stream))
    raw = json.dumps({**CHAT, "stream": True}, indent=2).encode()
    response = send(gw, raw)
    assert response.upstream is not None  # still the zero-copy passthrough
    assert b"".join(finish(response)) == b"".join(stream)
    assert fetch.requests[0].body == raw


def test_stream_usage_off_estimates_from_bytes():
    stream = [chunk("x" * 400), b"data: [DONE]\n\n"]
    extra = '[providers.local]\nbase_url = "http://127.0.0.1:9/v1"\nstream_usage = false\n'
    gw, fetch = gateway(
        "tokens_per_minute = 100000", lambda r: FakeResponse(200, SSE, stream), extra=extra
    )
    body = {**CHAT, "model": "local/m", "stream": True, "max_tokens": 10}
    response = send(gw, body)
    out = b"".join(finish(response))
    assert "stream_options" not in json.loads(fetch.requests[0].body)
    nxt = send(gw, {**body, "stream": False})
    remaining = int(dict(nxt.headers)["x-ratelimit-remaining-tokens"])
    finish(nxt)
    charged = 100000 - 10 - remaining
    assert charged == len(out) // 4 + len(json.dumps(body)) // 4  # never zero


def test_anthropic_stream_usage_is_read_before_translation():
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "m",
                "model": "claude-x",
                "role": "assistant",
                "content": [],
                "usage": {"input_tokens": 11, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": 9},
        },
        {"type": "message_stop"},
    ]
    data = [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]
    gw, _ = gateway("tokens_per_day = 1000", lambda r: FakeResponse(200, SSE, data))
    body = {**CHAT, "model": "claude-x", "stream": True, "max_tokens": 100}
    finish(send(gw, body))
    nxt = send(gw, body)
    assert dict(nxt.headers)["x-ratelimit-remaining-tokens"] == str(1000 - 20 - 100)
    finish(nxt)


def test_stream_slots_are_released_on_every_way_a_stream_ends():
    stream = [chunk("a"), chunk("b"), b"data: [DONE]\n\n"]
    gw, _ = gateway("concurrent_streams = 1", lambda r: FakeResponse(200, SSE, stream))
    body = {**CHAT, "stream": True}

    def refused():
        response = send(gw, body)
        finish(response)
        return response.status == 429

    # Done: read to the end.
    first = send(gw, body)
    assert refused()
    finish(first)
    assert not refused()
    # Client gone mid-stream: the adapter closes the response after one chunk.
    second = send(gw, body)
    drive(second.stream.__anext__())
    assert refused()
    drive(second.aclose())
    assert not refused()
    # Client gone before the first byte.
    third = send(gw, body)
    drive(third.aclose())
    assert not refused()


def test_a_stream_cut_by_the_upstream_releases_its_slot_and_is_charged_an_estimate():
    stream = [chunk("a" * 40), chunk("b")]
    gw, _ = gateway(
        "concurrent_streams = 1\ntokens_per_minute = 100000",
        lambda r: (
            FakeResponse(200, SSE, stream, error_after=1)
            if json.loads(r.body)["stream"]
            else openai_json({})(r)
        ),
    )
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 5}
    response = send(gw, body)
    try:
        finish(response)
    except Exception as exc:  # the relay passes the cut on as a cut
        assert "reset" in str(exc)
    nxt = send(gw, {**body, "stream": False})
    assert nxt.status == 200
    assert int(dict(nxt.headers)["x-ratelimit-remaining-tokens"]) < 100000 - 5
    finish(nxt)


def test_an_upstream_error_charges_no_tokens_and_keeps_our_headers():
    error = json.dumps({"error": {"message": "bad", "type": "invalid_request_error"}}).encode()
    gw, _ = gateway(
        "tokens_per_minute = 1000",
        lambda r: FakeResponse(400, {"x-ratelimit-remaining-tokens": "5"}, [error]),
    )
    response = send(gw, {**CHAT, "max_tokens": 100})
    assert response.status == 400
    assert dict(response.headers)["x-ratelimit-remaining-tokens"] == "900"
    again = send(gw, {**CHAT, "max_tokens": 100})
    assert dict(again.headers)["x-ratelimit-remaining-tokens"] == "900"  # nothing was kept


def test_fail_closed_without_a_store_and_open_when_configured():
    handler = openai_json({})
    env = {**OPENAI, "EDGERELAY_CONFIG": toml("requests_per_minute = 5")}
    closed = Gateway(
        load_config(env),
        FakeFetch(handler),
        clock=Clock(),
        new_id=lambda: "i",
        missing_store="bind EDGERELAY_LIMITS",
    )
    response = send(closed, CHAT)
    assert response.status == 503
    assert "bind EDGERELAY_LIMITS" in json.loads(response.body)["error"]["message"]
    assert closed.fetch.requests == []
    env["EDGERELAY_STORE_FAIL_OPEN"] = "true"
    opened = Gateway(load_config(env), FakeFetch(handler), clock=Clock(), new_id=lambda: "i")
    response = send(opened, CHAT)
    assert response.status == 200
    finish(response)


def test_the_anonymous_key_is_the_address():
    gw, _ = gateway("requests_per_minute = 1", openai_json({}))
    finish(send(gw, CHAT, ip="2001:db8::1"))
    assert send(gw, CHAT, ip="2001:db8::2").status == 429  # same /64
    # A spoofed X-Forwarded-For is a header like any other: it does not change the key.
    spoofed = send(gw, CHAT, ip="2001:db8::1", headers={"x-forwarded-for": "203.0.113.1"})
    assert spoofed.status == 429
    assert send(gw, CHAT, ip="2001:db9::1").status == 200


def test_json_usage_of_each_provider_is_read_from_the_answer():
    anthropic = {
        "id": "m",
        "type": "message",
        "role": "assistant",
        "model": "claude-x",
        "content": [{"type": "text", "text": '"usage": {"input_tokens": 999}'}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": 6, "output_tokens": 4},
    }
    gw, _ = gateway(
        "tokens_per_minute = 1000",
        lambda r: FakeResponse(
            200, {"content-type": "application/json"}, [json.dumps(anthropic).encode()]
        ),
    )
    body = {**CHAT, "model": "claude-x", "max_tokens": 100}
    finish(send(gw, body))
    nxt = send(gw, body)
    assert dict(nxt.headers)["x-ratelimit-remaining-tokens"] == str(1000 - 10 - 100)
    finish(nxt)


def test_a_usage_nested_too_deeply_is_estimated_not_decoded():
    deep = b'{"choices": [], "usage": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    gw, _ = gateway(
        "tokens_per_minute = 100000",
        lambda r: FakeResponse(200, {"content-type": "application/json"}, [deep]),
    )
    response = send(gw, {**CHAT, "max_tokens": 100})
    assert b"".join(finish(response)) == deep
    nxt = send(gw, {**CHAT, "max_tokens": 100})
    assert int(dict(nxt.headers)["x-ratelimit-remaining-tokens"]) < 100000 - 100  # estimated
    finish(nxt)


def test_client_keys_are_limited_by_their_client_id():
    keys = "sk-client-aaaa-1111,sk-client-bbbb-2222"
    env = {
        **OPENAI,
        "EDGERELAY_CONFIG": "[policies.default]\nrequests_per_minute = 1\n",
        "EDGERELAY_CLIENT_KEYS": keys,
    }
    gw = Gateway(
        load_config(env),
        FakeFetch(openai_json({})),
        clock=Clock(),
        new_id=lambda: "i",
        limit_store=MemoryStore(),
    )
    mock = {**CHAT, "model": "mock/echo"}

    def as_key(key):
        response = send(gw, mock, headers={"authorization": "Bearer " + key})
        finish(response)
        return response.status

    assert as_key("sk-client-aaaa-1111") == 200
    assert as_key("sk-client-aaaa-1111") == 429
    assert as_key("sk-client-bbbb-2222") == 200  # its own client id, its own counters
