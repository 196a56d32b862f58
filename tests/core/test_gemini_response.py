"""Whole Gemini ``generateContent`` answers and Google errors in OpenAI's shapes."""

import itertools
import json

import pytest

from edgerelay.core import GatewayError, load_config
from edgerelay.core.providers import gemini
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.routing import route_model
from edgerelay.core.safejson import MAX_DEPTH
from tests.core.gateway_helpers import NOW, call, error_of, make_gateway
from tests.support import shared_fixtures
from tests.support.fake_fetch import FakeResponse

ROUTE = route_model("gemini-2.5-flash", load_config({}))
ZERO_DETAILS = {"prompt_tokens_details": {"cached_tokens": 0}}


def ctx():
    counter = itertools.count(1)
    return ChatContext("chatcmpl-local", int(NOW), lambda: f"id{next(counter)}", False)


def translate(answer) -> dict:
    raw = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
    return json.loads(gemini.translate_response(raw, ROUTE, ctx()))


def usage(prompt, completion, reasoning=0, cached=0):
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def answer(parts, finish="STOP", **extra):
    candidate = {"content": {"parts": parts, "role": "model"}, "finishReason": finish, "index": 0}
    return {"candidates": [candidate], **extra}


def test_text_thoughts_several_function_calls_and_signatures():
    parts = [
        {"text": "Planning the calls.", "thought": True},
        {"text": "Checking "},
        {"text": "both."},
        {"functionCall": {"name": "weather", "args": {"city": "Paris"}}, "thoughtSignature": "S1"},
        {"functionCall": {"name": "weather", "args": {"city": "Zürich", "days": [1, 2]}}},
    ]
    meta = {
        "promptTokenCount": 40,
        "candidatesTokenCount": 12,
        "thoughtsTokenCount": 30,
        "cachedContentTokenCount": 8,
        "totalTokenCount": 82,
    }
    got = translate(answer(parts, usageMetadata=meta, modelVersion="gemini-2.5-flash-001"))
    assert got == {
        "id": "chatcmpl-local",  # no responseId: ours
        "object": "chat.completion",
        "created": int(NOW),
        "model": "gemini-2.5-flash-001",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Checking both.",
                    "refusal": None,
                    "reasoning_content": "Planning the calls.",
                    "tool_calls": [
                        {
                            "id": "call_id1",
                            "type": "function",
                            "function": {"name": "weather", "arguments": '{"city":"Paris"}'},
                        },
                        {
                            "id": "call_id2",
                            "type": "function",
                            "function": {
                                "name": "weather",
                                "arguments": '{"city":"Zürich","days":[1,2]}',
                            },
                        },
                    ],
                    "reasoning_details": [
                        {
                            "type": "reasoning.encrypted",
                            "data": "S1",
                            "id": "call_id1",
                            "format": "google-gemini-v1",
                            "model": "gemini-2.5-flash",
                            "index": 0,
                        }
                    ],
                },
                "logprobs": None,
                "finish_reason": "tool_calls",
            }
        ],
        "usage": usage(40, 42, reasoning=30, cached=8),
    }


def test_a_signature_on_a_text_part_is_carried_with_a_null_id():
    got = translate(answer([{"text": "Hi"}, {"text": "", "thoughtSignature": "T"}]))
    message = got["choices"][0]["message"]
    assert message["content"] == "Hi"
    assert message["reasoning_details"] == [
        {
            "type": "reasoning.encrypted",
            "data": "T",
            "id": None,
            "format": "google-gemini-v1",
            "model": "gemini-2.5-flash",
            "index": 0,
        }
    ]
    assert got["choices"][0]["finish_reason"] == "stop"


@pytest.mark.parametrize(
    ("finish", "calls", "expected"),
    [
        ("STOP", False, "stop"),
        ("STOP", True, "tool_calls"),
        ("MAX_TOKENS", False, "length"),
        ("MAX_TOKENS", True, "length"),
        ("SAFETY", False, "content_filter"),
        ("RECITATION", False, "content_filter"),
        ("BLOCKLIST", False, "content_filter"),
        ("PROHIBITED_CONTENT", False, "content_filter"),
        ("SPII", False, "content_filter"),
        ("OTHER", False, "stop"),
        ("MALFORMED_FUNCTION_CALL", False, "stop"),
    ],
)
def test_finish_reasons(finish, calls, expected):
    parts = [{"functionCall": {"name": "f", "args": {}}}] if calls else [{"text": "x"}]
    assert translate(answer(parts, finish))["choices"][0]["finish_reason"] == expected


def test_a_blocked_prompt_has_no_candidate_and_is_a_content_filter_finish():
    blocked = {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "responseId": "r1"}
    got = translate(blocked)
    assert got["id"] == "r1"
    assert got["model"] == "gemini-2.5-flash"  # no modelVersion: the routed name
    assert got["choices"][0]["message"]["content"] is None
    assert got["choices"][0]["finish_reason"] == "content_filter"
    assert got["usage"] == usage(0, 0)


@pytest.mark.parametrize(
    "body",
    [
        b"<html>",
        b"[]",
        b'{"candidates": ["x"]}',
        b'{"candidates": [{"content": 1}]}',
        b'{"candidates": ' + b"[" * 100_000 + b"}",
        # One level deeper than the limit, with the answer's own levels.
        b'{"candidates": [{"content": {"parts": [{"functionCall": {"name": "f", "args": {"a": '
        + b"[" * (MAX_DEPTH - 7)
        + b"]" * (MAX_DEPTH - 7)
        + b"}}}]}}]}",
        b'{"candidates": [{"content": {"parts": [{"text": ["x"]}]}}]}',
    ],
)
def test_a_body_that_is_not_a_gemini_answer_is_a_502(body):
    with pytest.raises(GatewayError) as raised:
        gemini.translate_response(body, ROUTE, ctx())
    assert raised.value.status == 502


def test_usage_counts_that_are_not_numbers_count_as_zero():
    for meta in ([1], "x", {"promptTokenCount": "3", "candidatesTokenCount": None}):
        got = translate(answer([{"text": "ok"}], usageMetadata=meta))
        assert got["choices"][0]["message"]["content"] == "ok"
        assert got["usage"] == usage(0, 0)


FIXTURES = pytest.mark.skipif(
    not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON
)


@FIXTURES
def test_recorded_text_answer():
    got = translate(shared_fixtures.body("gemini/nonstream-text-1.json"))
    assert got == {
        "id": "bzlXaa_EE_aHqtsPi_zw8Ao",
        "object": "chat.completion",
        "created": int(NOW),
        "model": "gemini-2.5-flash",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "Hello! How can I help you today?",
                    "refusal": None,
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": usage(9, 43, reasoning=34),
    }


@FIXTURES
def test_recorded_tool_answer():
    got = translate(shared_fixtures.body("gemini/nonstream-tool-1.json"))
    choice = got["choices"][0]
    assert choice["message"] == {
        "role": "assistant",
        "content": None,
        "refusal": None,
        "tool_calls": [
            {
                "id": "call_id1",
                "type": "function",
                "function": {"name": "get_user_country", "arguments": "{}"},
            }
        ],
    }
    assert choice["finish_reason"] == "tool_calls"
    assert (got["id"], got["model"]) == ("LlteaIDvD9m7nvgPz5Sb0Aw", "gemini-2.0-flash")
    assert got["usage"] == usage(33, 5)


@FIXTURES
def test_recorded_errors_keep_status_message_and_retry_delay():
    error = gemini.translate_error(429, shared_fixtures.body("gemini/error-429-1.json"), {})
    assert error.status == 429
    assert error.message.startswith("You exceeded your current quota")
    assert error.code == "RESOURCE_EXHAUSTED"
    assert error.retry_after == 58.0
    error = gemini.translate_error(404, shared_fixtures.body("gemini/error-404-1.json"), {})
    assert (error.status, error.code, error.retry_after) == (404, "NOT_FOUND", None)
    assert error.message.startswith("models/gemini-3.6-flahs is not found")


def google_error(status, message, name, details=None):
    error = {"code": status, "message": message, "status": name}
    if details is not None:
        error["details"] = details
    return json.dumps({"error": error}, indent=2).encode() + b"\n"


def test_error_shapes():
    retry = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "1.5s"}]
    error = gemini.translate_error(429, google_error(429, "slow down", "X", retry), {})
    assert error.retry_after == 1.5
    wrapped = b"[" + google_error(400, "bad", "INVALID_ARGUMENT") + b"]"
    error = gemini.translate_error(400, wrapped, {})
    assert (error.message, error.code) == ("bad", "INVALID_ARGUMENT")
    error = gemini.translate_error(502, b"<html>Bad Gateway</html>", {})
    assert (error.status, error.message) == (502, "The Gemini upstream answered with status 502.")
    bad_delay = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"}]
    assert (
        gemini.translate_error(429, google_error(429, "m", "X", bad_delay), {}).retry_after is None
    )


ENV = {"GEMINI_API_KEY": "gk-secret", "GEMINI_BASE_URL": "https://gemini.test"}
CHAT = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}


def test_through_the_gateway_a_429_keeps_status_message_and_retry_after():
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "58s"}]
    body = google_error(429, "Quota exceeded.", "RESOURCE_EXHAUSTED", details)
    gateway, fetch = make_gateway(lambda request: FakeResponse(429, {}, [body]), ENV)
    response, _ = call(gateway, body=CHAT)
    assert response.status == 429
    assert ("retry-after", "58") in response.headers
    error = error_of(response)
    assert error["message"] == "Quota exceeded."
    assert error["type"] == "rate_limit_error"
    assert error["code"] == "RESOURCE_EXHAUSTED"
    assert b"gk-secret" not in response.body
    assert fetch.responses[0].closed


def test_through_the_gateway_a_json_answer_is_translated():
    reply = json.dumps(answer([{"text": "Hello"}], responseId="r9")).encode()
    gateway, fetch = make_gateway(
        lambda request: FakeResponse(200, {}, [reply[:9], reply[9:]]), ENV
    )
    response, _ = call(gateway, body=CHAT)
    assert response.status == 200
    assert dict(response.headers)["content-type"] == "application/json"
    got = json.loads(response.body)
    assert (got["id"], got["choices"][0]["message"]["content"]) == ("r9", "Hello")
    assert fetch.requests[0].url.endswith(":generateContent")
