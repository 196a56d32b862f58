"""Anthropic JSON answers and errors -> OpenAI, and the translated stream through the gateway."""

import json

import pytest

from edgerelay.core.providers import anthropic
from edgerelay.core.safejson import MAX_DEPTH
from tests.core.gateway_helpers import NOW, call, error_of, make_gateway
from tests.support import anthropic_wire as wire
from tests.support import shared_fixtures
from tests.support.fake_fetch import FakeResponse
from tests.support.splits import random_splits

ENV = {"ANTHROPIC_API_KEY": "sk-ant-secret"}
DEEP = json.loads(
    "[" * (MAX_DEPTH - 3) + "]" * (MAX_DEPTH - 3)
)  # with the answer's own levels: 1 too many
CHAT = {"model": "anthropic/claude-x", "messages": [{"role": "user", "content": "Hi"}]}


def message(content, stop_reason="end_turn", usage=None, **extra) -> dict:
    return {
        "id": "msg_01Answer",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 12, "output_tokens": 34},
        **extra,
    }


def complete(upstream_body: bytes, status=200, headers=None, body=None):
    gateway, fetch = make_gateway(
        lambda request: FakeResponse(status, headers or {}, [upstream_body]), ENV
    )
    response, _ = call(gateway, body=body or CHAT)
    assert fetch.responses[0].closed
    return response


def test_text_answer_is_an_exact_openai_completion():
    content = [{"type": "text", "text": "Hello"}, {"type": "text", "text": " there"}]
    response = complete(json.dumps(message(content)).encode())
    assert response.status == 200
    assert json.loads(response.body) == {
        "id": "msg_01Answer",
        "object": "chat.completion",
        "created": int(NOW),
        "model": "claude-sonnet-4-5-20250929",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello there", "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": 12,
            "completion_tokens": 34,
            "total_tokens": 46,
            "prompt_tokens_details": {"cached_tokens": 0},
        },
    }


def test_thinking_tool_calls_and_usage_with_cache():
    content = [
        {"type": "thinking", "thinking": "Two cities.", "signature": "sig=="},
        {"type": "redacted_thinking", "data": "ENC"},
        {"type": "tool_use", "id": "toolu_A", "name": "weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_B", "name": "weather", "input": {"city": "東京"}},
        {"type": "tool_use", "id": "toolu_C", "name": "now", "input": {}},
    ]
    usage = {
        "input_tokens": 3,
        "cache_creation_input_tokens": 10,
        "cache_read_input_tokens": 200,
        "output_tokens": 50,
        "output_tokens_details": {"thinking_tokens": 20},
    }
    response = complete(json.dumps(message(content, "tool_use", usage)).encode())
    answer = json.loads(response.body)
    choice = answer["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": "toolu_A",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
            },
            {
                "id": "toolu_B",
                "type": "function",
                "function": {"name": "weather", "arguments": '{"city":"東京"}'},
            },
            {"id": "toolu_C", "type": "function", "function": {"name": "now", "arguments": "{}"}},
        ],
        "reasoning_content": "Two cities.",
        "reasoning_details": [
            {
                "type": "reasoning.text",
                "text": "Two cities.",
                "signature": "sig==",
                "format": "anthropic-claude-v1",
                "model": "claude-x",
                "index": 0,
            },
            {
                "type": "reasoning.encrypted",
                "data": "ENC",
                "format": "anthropic-claude-v1",
                "model": "claude-x",
                "index": 1,
            },
        ],
    }
    assert answer["usage"] == {
        "prompt_tokens": 213,
        "completion_tokens": 50,
        "total_tokens": 263,
        "prompt_tokens_details": {"cached_tokens": 200},
        "completion_tokens_details": {"reasoning_tokens": 20},
    }


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(stop_reason, finish):
    content = [{"type": "text", "text": "x"}]
    response = complete(json.dumps(message(content, stop_reason)).encode())
    assert json.loads(response.body)["choices"][0]["finish_reason"] == finish


def test_an_answer_that_is_not_a_message_is_502():
    for body in (b"<html>", b"[]", b'{"type": "message"}'):
        response = complete(body)
        assert response.status == 502
        assert "not a message" in error_of(response)["message"]


@pytest.mark.parametrize(
    "body",
    [
        message([{"type": "text", "text": ["not", "a", "string"]}]),
        message([{"type": "thinking", "thinking": {"x": 1}, "signature": "s"}]),
        message([{"type": "text", "text": "x"}], stop_reason={"unhashable": True}),
        message(["a block that is a string"], stop_reason=["x"]),
        b'{"content": [], "usage": ' + b"[" * 100_000 + b"}",
        message([{"type": "tool_use", "id": "t", "name": "f", "input": {"a": DEEP}}]),
    ],
)
def test_an_answer_of_the_wrong_shape_is_502_never_500(body):
    response = complete(body if isinstance(body, bytes) else json.dumps(body).encode())
    assert response.status == 502, response.body
    assert "not a message" in error_of(response)["message"]


def test_usage_counts_that_are_not_numbers_count_as_zero():
    usage = {"input_tokens": "12", "output_tokens": {"n": 3}, "cache_read_input_tokens": None}
    response = complete(json.dumps(message([{"type": "text", "text": "ok"}], usage=usage)).encode())
    assert response.status == 200
    answer = json.loads(response.body)
    assert answer["choices"][0]["message"]["content"] == "ok"
    assert answer["usage"]["total_tokens"] == 0


@pytest.mark.parametrize(
    ("status", "kind", "expected"),
    [
        (400, "invalid_request_error", 400),
        (401, "authentication_error", 401),
        (404, "not_found_error", 404),
        (429, "rate_limit_error", 429),
        (500, "api_error", 500),
        (529, "overloaded_error", 503),
    ],
)
def test_upstream_errors_keep_message_and_type_and_map_529_to_503(status, kind, expected):
    body = {"type": "error", "error": {"type": kind, "message": f"msg {kind}"}, "request_id": "r"}
    response = complete(json.dumps(body).encode(), status, {"retry-after": "12"})
    assert response.status == expected
    assert error_of(response) == {
        "message": f"msg {kind}",
        "type": kind,
        "param": None,
        "code": None,
    }
    assert ("retry-after", "12") in response.headers
    assert b"sk-ant-secret" not in response.body


def test_an_error_body_that_is_not_json_still_gives_a_clean_error():
    error = anthropic.translate_error(502, b"<html>Bad gateway</html>", {})
    assert error.status == 502
    assert "502" in error.message


def test_stream_through_the_gateway_and_a_broken_upstream_gets_an_error_chunk():
    raw = wire.text_stream("Hel", "lo")
    pieces = random_splits(raw, 1)
    gateway, fetch = make_gateway(lambda request: FakeResponse(200, {}, pieces), ENV)
    response, chunks = call(gateway, body={**CHAT, "stream": True})
    assert response.status == 200
    assert dict(response.headers)["content-type"].startswith("text/event-stream")
    parsed = wire.frames(b"".join(chunks))
    assert wire.accumulate(parsed)["content"] == "Hello"
    assert {f["created"] for f in parsed[:-1]} == {int(NOW)}
    assert parsed[-1] == "[DONE]"
    assert fetch.responses[0].closed

    # Cut after the first content delta: a cut before any content is retried instead
    # (tests/core/test_gateway_retries.py), after it the client gets an error chunk.
    first = raw.index(b"\n\n", raw.index(b"text_delta")) + 2
    pieces = [*random_splits(raw[:first], 2), raw[first:]]
    cut = FakeResponse(200, {}, pieces, error_after=len(pieces) - 1)
    gateway, fetch = make_gateway(lambda request: cut, ENV)
    _, chunks = call(gateway, body={**CHAT, "stream": True})
    last = wire.frames(b"".join(chunks))[-1]
    assert last["error"]["message"].startswith("The upstream stream broke off")
    assert cut.closed


def test_no_stream_chunk_is_held_back_by_the_gateway():
    frames = wire.text_stream("a", "b", "c").split(b"\n\n")[:-1]
    gateway, _ = make_gateway(
        lambda request: FakeResponse(200, {}, [f + b"\n\n" for f in frames]), ENV
    )
    _, chunks = call(gateway, body={**CHAT, "stream": True})
    # One output chunk per upstream frame that carries something (block start/stop carry none).
    assert len(chunks) == len(frames) - 2


@pytest.mark.skipif(not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON)
@pytest.mark.parametrize("name", shared_fixtures.names("anthropic", "nonstream-") or ["none"])
def test_recorded_answers(name):
    raw = shared_fixtures.body(name)
    source = json.loads(raw)
    response = complete(raw)
    answer = json.loads(response.body)
    choice = answer["choices"][0]
    assert answer["id"] == source["id"] and answer["model"] == source["model"]
    blocks = source["content"]
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    tools = [b for b in blocks if b["type"] == "tool_use"]
    thinking = [b for b in blocks if b["type"] == "thinking"]
    assert choice["message"]["content"] == "".join(texts)
    calls = choice["message"].get("tool_calls", [])
    assert [(c["id"], c["function"]["name"]) for c in calls] == [
        (t["id"], t["name"]) for t in tools
    ]
    assert [json.loads(c["function"]["arguments"]) for c in calls] == [t["input"] for t in tools]
    details = choice["message"].get("reasoning_details", [])
    assert [d["signature"] for d in details] == [t["signature"] for t in thinking]
    usage = source["usage"]
    assert answer["usage"]["prompt_tokens"] == usage["input_tokens"]
    assert answer["usage"]["completion_tokens"] == usage["output_tokens"]
    assert (
        choice["finish_reason"]
        == {"end_turn": "stop", "tool_use": "tool_calls"}[source["stop_reason"]]
    )


@pytest.mark.skipif(not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON)
@pytest.mark.parametrize("name", shared_fixtures.names("anthropic", "error-") or ["none"])
def test_recorded_errors(name):
    raw = shared_fixtures.body(name)
    source = json.loads(raw)["error"]
    status = int(name.split("-")[1])
    response = complete(raw, status)
    assert response.status == status
    error = error_of(response)
    assert error["message"] == source["message"]
    assert error["type"] == source["type"]
