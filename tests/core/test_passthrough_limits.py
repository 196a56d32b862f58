"""Limits on the native passthrough routes (Anthropic /v1/messages, Gemini, OpenAI): each call
is admitted after the route's own checks and before the upstream call; a refusal (429) or a
missing store (503) comes in the route's own error shape with no upstream call; answers carry
the gateway's rate-limit headers instead of the provider's; usage is settled from the provider's
own JSON and stream shapes; stream slots are given back however a stream ends."""

from __future__ import annotations

import itertools
import json

from edgerelay.core import Gateway, Request, load_config
from edgerelay.core.limits import MemoryStore
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeFetch, FakeResponse

T0 = 1_760_000_040.0
KEYS = {
    "OPENAI_API_KEY": "sk-owner-openai-key",
    "ANTHROPIC_API_KEY": "sk-ant-owner-key",
    "GEMINI_API_KEY": "gemini-owner-key",
}
JSON_TYPE = {"content-type": "application/json"}
SSE = {"content-type": "text/event-stream"}
MESSAGES = "/anthropic/v1/messages"
GEMINI = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
GEMINI_STREAM = "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
OPENAI_CHAT = "/openai/v1/chat/completions"
CLAUDE = {
    "model": "claude-sonnet-4-6",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "hi"}],
}
GEMINI_BODY = {
    "contents": [{"parts": [{"text": "hi"}]}],
    "generationConfig": {"maxOutputTokens": 100},
}
GPT = {"model": "gpt-4.1", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


async def no_wait(seconds):
    """Retries' waits, not waited (tests never sleep)."""


def gateway(policy, handler, *, store=True, env=None):
    # The anonymous policy has no passthrough routes unless it lists them.
    allowed = 'passthrough = ["anthropic", "gemini", "openai"]'
    config = f"[policies.anonymous]\n{allowed}\n{policy}\n"
    env = {**KEYS, "EDGERELAY_CONFIG": config, **(env or {})}
    ids = itertools.count(1)
    fetch = FakeFetch(handler)
    gw = Gateway(
        load_config(env),
        fetch,
        clock=lambda: T0,
        new_id=lambda: f"id{next(ids)}",
        limit_store=MemoryStore() if store else None,
        missing_store="set EDGERELAY_STORE to memory or redis://…",
        sleep=no_wait,
    )
    return gw, fetch


def send(gw, path, body, ip="198.51.100.7"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"content-type": "application/json"}
    return drive(gw.handle(Request("POST", path, "", headers, raw, client_ip=ip)))


def finish(response):
    out = b"".join(collect(response.stream)) if response.stream is not None else response.body
    drive(response.aclose())
    return out


def headers(response):
    return dict(response.headers)


def claude_answer(input_tokens=6, output_tokens=4):
    body = {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-6",
        "content": [{"type": "text", "text": "ok"}],
        "stop_reason": "end_turn",
        "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
    }
    upstream = {**JSON_TYPE, "anthropic-ratelimit-requests-remaining": "4999"}
    return lambda request: FakeResponse(200, upstream, [json.dumps(body).encode()])


def gemini_answer(request):
    body = {
        "candidates": [{"content": {"parts": [{"text": "ok"}]}, "finishReason": "STOP"}],
        "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 3},
    }
    return FakeResponse(200, JSON_TYPE, [json.dumps(body).encode()])


def test_anthropic_messages_are_limited_and_refused_in_anthropics_shape():
    gw, fetch = gateway("requests_per_minute = 1", claude_answer())
    first = send(gw, MESSAGES, CLAUDE)
    assert first.status == 200
    got = headers(first)
    assert got["x-ratelimit-limit-requests"] == "1"
    assert got["x-ratelimit-remaining-requests"] == "0"
    assert "anthropic-ratelimit-requests-remaining" not in got  # the owner's account, not ours
    assert json.loads(finish(first))["usage"]["input_tokens"] == 6  # the answer itself, as sent
    refused = send(gw, MESSAGES, CLAUDE)
    assert refused.status == 429
    assert json.loads(refused.body) == {
        "type": "error",
        "error": {
            "type": "rate_limit_error",
            "message": json.loads(refused.body)["error"]["message"],
        },
    }
    assert int(headers(refused)["retry-after"]) >= 1
    assert headers(refused)["x-ratelimit-remaining-requests"] == "0"
    assert len(fetch.requests) == 1  # the refusal made no upstream call


def test_gemini_is_refused_in_geminis_shape_and_a_spent_budget_says_do_not_retry():
    gw, fetch = gateway("tokens_per_day = 115", gemini_answer)
    first = send(gw, GEMINI, GEMINI_BODY)
    assert first.status == 200
    finish(first)  # 10 tokens used: the next reservation of 100 still fits, a third not
    second = send(gw, GEMINI, GEMINI_BODY)
    assert second.status == 200, second.body
    assert headers(second)["x-ratelimit-remaining-tokens"] == str(115 - 10 - 100)
    finish(second)
    refused = send(gw, GEMINI, GEMINI_BODY)
    assert refused.status == 429
    error = json.loads(refused.body)["error"]
    assert (error["code"], error["status"]) == (429, "RESOURCE_EXHAUSTED")
    assert set(error) == {"code", "message", "status"}
    assert headers(refused)["x-should-retry"] == "false"
    assert len(fetch.requests) == 2


def test_openai_passthrough_is_refused_in_openais_shape():
    answer = {"id": "c", "object": "chat.completion", "choices": [], "usage": {"prompt_tokens": 1}}
    gw, fetch = gateway(
        "requests_per_minute = 1",
        lambda r: FakeResponse(200, JSON_TYPE, [json.dumps(answer).encode()]),
    )
    finish(send(gw, OPENAI_CHAT, GPT))
    refused = send(gw, OPENAI_CHAT, GPT)
    assert refused.status == 429
    assert json.loads(refused.body)["error"]["code"] == "rate_limit_exceeded"
    assert len(fetch.requests) == 1


def test_without_a_store_each_route_answers_503_in_its_shape_naming_what_to_set():
    gw, fetch = gateway("requests_per_minute = 5", claude_answer(), store=False)
    anthropic = send(gw, MESSAGES, CLAUDE)
    assert anthropic.status == 503
    body = json.loads(anthropic.body)
    assert body["type"] == "error" and "EDGERELAY_STORE" in body["error"]["message"]
    gemini = send(gw, GEMINI, GEMINI_BODY)
    assert gemini.status == 503
    assert json.loads(gemini.body)["error"]["status"] == "UNAVAILABLE"
    assert "EDGERELAY_STORE" in json.loads(gemini.body)["error"]["message"]
    assert fetch.requests == []
    opened, fetch = gateway(
        "requests_per_minute = 5",
        claude_answer(),
        store=False,
        env={"EDGERELAY_STORE_FAIL_OPEN": "true"},
    )
    response = send(opened, MESSAGES, CLAUDE)
    assert response.status == 200
    finish(response)
    assert len(fetch.requests) == 1


def test_anthropic_json_usage_is_settled_and_the_route_checks_come_first():
    gw, _ = gateway("tokens_per_minute = 1000", claude_answer(6, 4))
    finish(send(gw, MESSAGES, CLAUDE))
    # A path outside the allowlist is the route's 404 before any counting.
    assert send(gw, "/anthropic/v1/files", CLAUDE).status == 404
    nxt = send(gw, MESSAGES, CLAUDE)
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == str(1000 - 10 - 100)
    finish(nxt)


def claude_stream(input_tokens=11, output_tokens=9):
    events = [
        {
            "type": "message_start",
            "message": {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "model": "claude-sonnet-4-6",
                "content": [],
                "usage": {"input_tokens": input_tokens, "output_tokens": 1},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}},
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn"},
            "usage": {"output_tokens": output_tokens},
        },
        {"type": "message_stop"},
    ]
    return [f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events]


def test_anthropic_stream_usage_is_read_and_the_bytes_are_the_upstreams():
    stream = claude_stream()
    gw, _ = gateway("tokens_per_minute = 1000", lambda r: FakeResponse(200, SSE, stream))
    response = send(gw, MESSAGES, {**CLAUDE, "stream": True})
    assert (
        response.upstream is None or response.upstream.native_body is None
    )  # read, not handed over
    assert finish(response) == b"".join(stream)
    assert response.log.usage is None and response.log.account.charged.total == 20
    nxt = send(gw, MESSAGES, CLAUDE)
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == str(1000 - 20 - 100)
    finish(nxt)


def test_gemini_stream_usage_is_read_from_its_events():
    chunks = [
        b'data: {"candidates":[{"content":{"parts":[{"text":"o"}]}}],'
        b'"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":1}}\n\n',
        b'data: {"candidates":[{"content":{"parts":[{"text":"k"}]},"finishReason":"STOP"}],'
        b'"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":5}}\n\n',
    ]
    gw, _ = gateway("tokens_per_minute = 1000", lambda r: FakeResponse(200, SSE, chunks))
    response = send(gw, GEMINI_STREAM, GEMINI_BODY)
    assert finish(response) == b"".join(chunks)
    nxt = send(gw, GEMINI, GEMINI_BODY)
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == str(1000 - 12 - 100)
    finish(nxt)


def openai_chunk(content, usage=None, choices=True, with_usage_field=False):
    body = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4.1"}
    body["choices"] = [{"index": 0, "delta": {"content": content}}] if choices else []
    if usage is not None or with_usage_field:
        body["usage"] = usage
    return ("data: " + json.dumps(body, separators=(",", ":")) + "\n\n").encode()


def test_openai_passthrough_streams_get_usage_added_and_removed_byte_identically():
    words = ["Hel", "lo"]
    upstream_chunks = [openai_chunk(w, with_usage_field=True) for w in words]
    upstream_chunks.append(
        openai_chunk(None, {"prompt_tokens": 5, "completion_tokens": 3}, choices=False)
    )
    upstream_chunks.append(b"data: [DONE]\n\n")
    without = b"".join(openai_chunk(w) for w in words) + b"data: [DONE]\n\n"
    sent = []

    def upstream(request):
        sent.append(json.loads(request.body))
        return FakeResponse(200, SSE, upstream_chunks)

    gw, _ = gateway("tokens_per_minute = 1000", upstream)
    response = send(gw, OPENAI_CHAT, {**GPT, "stream": True})
    assert finish(response) == without
    assert sent[0]["stream_options"] == {"include_usage": True}
    nxt = send(gw, OPENAI_CHAT, GPT)
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == str(1000 - 8 - 100)
    finish(nxt)


def test_a_passthrough_stream_slot_is_given_back_however_the_stream_ends():
    stream = claude_stream()
    gw, _ = gateway("concurrent_streams = 1", lambda r: FakeResponse(200, SSE, stream))
    body = {**CLAUDE, "stream": True}

    def refused():
        response = send(gw, MESSAGES, body)
        finish(response)
        return response.status == 429

    first = send(gw, MESSAGES, body)
    assert refused()
    finish(first)  # done
    assert not refused()
    second = send(gw, MESSAGES, body)
    drive(second.stream.__anext__())
    drive(second.aclose())  # the client left mid-stream
    assert not refused()
    third = send(gw, MESSAGES, body)
    drive(third.aclose())  # the client left before the first byte
    assert not refused()
    cut = gateway(
        "concurrent_streams = 1", lambda r: FakeResponse(200, SSE, stream, error_after=2)
    )[0]
    broken = send(cut, MESSAGES, body)
    finish(broken)  # the upstream broke off: the relay ended it with Anthropic's error event
    again = send(cut, MESSAGES, body)
    assert again.status == 200
    drive(again.aclose())


def test_an_upstream_error_on_a_passthrough_route_charges_no_tokens():
    error = json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "x"}})
    gw, _ = gateway(
        "tokens_per_minute = 1000",
        lambda r: FakeResponse(529, JSON_TYPE, [error.encode()]),
        env={"EDGERELAY_RETRIES": "0"},  # the upstream's error is the answer, not retried
    )
    response = send(gw, MESSAGES, CLAUDE)
    assert response.status == 529
    assert finish(response) == error.encode()  # the provider's own error, as sent
    again = send(gw, MESSAGES, CLAUDE)
    assert headers(again)["x-ratelimit-remaining-tokens"] == "900"
    finish(again)


def test_token_counting_is_a_request_but_no_tokens():
    answer = lambda r: FakeResponse(200, JSON_TYPE, [b'{"input_tokens": 5000}'])  # noqa: E731
    gw, _ = gateway("requests_per_minute = 2\ntokens_per_minute = 1000", answer)
    finish(send(gw, "/anthropic/v1/messages/count_tokens", CLAUDE))
    nxt = send(gw, MESSAGES, CLAUDE)
    assert headers(nxt)["x-ratelimit-remaining-requests"] == "0"
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == "900"


def test_with_limits_passthrough_bodies_are_read_before_the_call():
    gw, _ = gateway("requests_per_minute = 5", claude_answer())
    request = Request("POST", MESSAGES, "", {"content-type": "application/json"}, b"")
    assert gw.streams_upload(request) is False
    plain = Gateway(load_config(KEYS), FakeFetch(claude_answer()), clock=lambda: T0, new_id=str)
    assert plain.streams_upload(request) is True


def test_the_log_line_names_the_provider_model_and_limit_decision():
    gw, _ = gateway("requests_per_minute = 1", claude_answer())
    response = send(gw, MESSAGES, CLAUDE)
    finish(response)
    line = json.loads(response.log.line())
    assert (line["route"], line["provider"], line["model"]) == (
        "anthropic",
        "anthropic",
        "claude-sonnet-4-6",
    )
    assert line["limit"] == "admitted" and line["usage"]["input"] == 6
    refused = send(gw, MESSAGES, CLAUDE)
    assert json.loads(refused.log.line())["limit"] == "refused"


def overloaded(request):
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    headers = {**JSON_TYPE, "anthropic-ratelimit-requests-remaining": "4999"}
    return FakeResponse(529, headers, [json.dumps(error).encode()])


def in_turn(*handlers):
    """A Fetch handler answering the n-th request with handlers[n] (the last repeats)."""
    seen = []

    def handler(request):
        seen.append(request)
        return handlers[min(len(seen), len(handlers)) - 1](request)

    return handler


def test_a_retried_passthrough_call_is_one_request_charged_the_answer_that_reached_the_client():
    # As a chat completion's retries: one request, and the usage settled is that of the answer
    # the client got, not of the attempt that failed first.
    gw, fetch = gateway(
        "requests_per_minute = 2\ntokens_per_minute = 1000",
        in_turn(overloaded, overloaded, claude_answer(input_tokens=30, output_tokens=20)),
    )
    response = send(gw, MESSAGES, CLAUDE)
    assert response.status == 200
    got = headers(response)
    assert got["x-ratelimit-remaining-requests"] == "1"  # counted once
    assert got["x-ratelimit-remaining-tokens"] == "900"
    assert "anthropic-ratelimit-requests-remaining" not in got
    assert json.loads(finish(response))["usage"]["output_tokens"] == 20
    assert len(fetch.requests) == 3
    nxt = send(gw, MESSAGES, CLAUDE)
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == str(1000 - 50 - 100)
    assert headers(nxt)["x-ratelimit-remaining-requests"] == "0"
    finish(nxt)


def test_a_retried_passthrough_stream_gets_usage_added_removed_and_charged_and_holds_its_slot():
    words = ["Hel", "lo"]
    chunks = [openai_chunk(w, with_usage_field=True) for w in words]
    chunks.append(openai_chunk(None, {"prompt_tokens": 5, "completion_tokens": 3}, choices=False))
    chunks.append(b"data: [DONE]\n\n")
    without = b"".join(openai_chunk(w) for w in words) + b"data: [DONE]\n\n"
    unavailable = json.dumps({"error": {"message": "busy"}}).encode()
    sent = []

    def upstream(request):
        sent.append(json.loads(request.body))
        if len(sent) == 1:
            return FakeResponse(503, JSON_TYPE, [unavailable])
        return FakeResponse(200, SSE, chunks)

    gw, _ = gateway("tokens_per_minute = 1000\nconcurrent_streams = 1", upstream)
    response = send(gw, OPENAI_CHAT, {**GPT, "stream": True})
    assert response.status == 200
    assert [body.get("stream_options") for body in sent] == [{"include_usage": True}] * 2
    assert send(gw, OPENAI_CHAT, {**GPT, "stream": True}).status == 429  # its slot is held
    assert finish(response) == without
    nxt = send(gw, OPENAI_CHAT, {**GPT, "stream": True})
    assert nxt.status == 200  # the slot was given back at the end
    assert headers(nxt)["x-ratelimit-remaining-tokens"] == str(1000 - 8 - 100)
    drive(nxt.aclose())


def test_a_passthrough_call_that_fails_after_retries_charges_no_tokens():
    gw, fetch = gateway("tokens_per_minute = 1000\nconcurrent_streams = 1", overloaded)
    response = send(gw, MESSAGES, {**CLAUDE, "stream": True})
    assert response.status == 529
    finish(response)
    assert len(fetch.requests) == 3
    again = send(gw, MESSAGES, {**CLAUDE, "stream": True})
    assert again.status == 529  # the slot was given back
    assert headers(again)["x-ratelimit-remaining-tokens"] == "900"
    finish(again)
