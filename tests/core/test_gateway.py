import json

import pytest

from edgerelay.core.fetch import FetchError
from edgerelay.core.safejson import MAX_DEPTH
from tests.core.gateway_helpers import NOW, call, error_of, make_gateway
from tests.support.fake_fetch import FakeResponse

CHAT = {"model": "mock/echo", "messages": [{"role": "user", "content": "hello brave new world"}]}
OPENAI_ENV = {"OPENAI_API_KEY": "sk-test-secret"}


def frames(chunks):
    text = b"".join(chunks).decode()
    return [f[len("data: ") :] for f in text.split("\n\n") if f]


def test_mock_echo_streams_word_by_word_in_openai_chunk_format():
    gateway, fetch = make_gateway()
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response, chunks = call(gateway, body=body)
    assert response.status == 200
    assert dict(response.headers)["content-type"].startswith("text/event-stream")
    data = frames(chunks)
    assert data[-1] == "[DONE]"
    parsed = [json.loads(d) for d in data[:-1]]
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    words = [p["choices"][0]["delta"].get("content") for p in parsed[1:5]]
    assert words == ["hello", " brave", " new", " world"]
    assert parsed[5]["choices"][0]["finish_reason"] == "stop"
    assert parsed[6]["choices"] == []
    assert parsed[6]["usage"] == {"prompt_tokens": 4, "completion_tokens": 4, "total_tokens": 8}
    assert {p["id"] for p in parsed} == {"chatcmpl-id1"}
    assert {p["created"] for p in parsed} == {int(NOW)}
    assert all(p["object"] == "chat.completion.chunk" for p in parsed)
    assert fetch.requests == []


def test_mock_echo_without_usage_has_no_usage_chunk_and_json_answer():
    gateway, _ = make_gateway()
    response, chunks = call(gateway, body={**CHAT, "stream": True})
    parsed = [json.loads(d) for d in frames(chunks)[:-1]]
    assert all("usage" not in p for p in parsed)
    response, _ = call(gateway, body=CHAT)
    answer = json.loads(response.body)
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "hello brave new world"
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_mock_echo_honours_max_tokens_with_length_finish():
    gateway, _ = make_gateway()
    response, _ = call(gateway, body={**CHAT, "max_tokens": 2})
    choice = json.loads(response.body)["choices"][0]
    assert choice["message"]["content"] == "hello brave"
    assert choice["finish_reason"] == "length"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        ({"messages": [{"role": "user", "content": "x"}]}, "model"),
        ({"model": "mock/echo"}, "messages"),
        ({"model": "mock/echo", "messages": []}, "messages"),
        ({"model": "mock/echo", "messages": ["hi"]}, "messages[0]"),
        ({"model": "mock/echo", "messages": [{"role": "robot"}]}, "messages[0].role"),
        ({**CHAT, "stream": "yes"}, "stream"),
        ({"model": "mock/echo", "messages": [{"role": ["user"]}]}, "messages[0].role"),
        ({"model": "mock/echo", "messages": [{"role": {"a": 1}}]}, "messages[0].role"),
        (b"[" * 100_000 + b"]" * 100_000, None),
        (
            b'{"model": "mock/echo", "temperature": NaN, "messages": [{"role": "user"}]}',
            "temperature",
        ),
        (
            b'{"model": "mock/echo", "top_p": -Infinity, "messages": [{"role": "user"}]}',
            "top_p",
        ),
        (
            b'{"model": "mock/echo", "temperature": 1e400, "messages": [{"role": "user"}]}',
            "temperature",
        ),
        (
            b'{"model": "mock/echo", "messages": [{"role": "user", "x": [1, -2E+999]}]}',
            "messages[0].x[1]",
        ),
    ],
)
def test_bad_requests_get_400_naming_the_field(body, param):
    gateway, _ = make_gateway()
    response, _ = call(gateway, body=body)
    assert response.status == 400
    error = error_of(response)
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert "Traceback" not in error["message"]


def test_routes_methods_and_size_limit():
    gateway, _ = make_gateway(EDGERELAY_MAX_BODY_BYTES="100")
    assert call(gateway, "GET", "/nope")[0].status == 404
    response, _ = call(gateway, "GET", "/v1/chat/completions")
    assert response.status == 405
    assert ("allow", "POST") in response.headers
    assert call(gateway, "GET", "/healthz")[0].status == 200
    assert call(gateway, "HEAD", "/healthz")[0].status == 200  # health checkers use HEAD
    response, _ = call(gateway, "POST", "/v1/models")
    assert (response.status, dict(response.headers)["allow"]) == (405, "GET, HEAD")
    big = {**CHAT, "messages": [{"role": "user", "content": "x" * 200}]}
    response, _ = call(gateway, body=big)
    assert response.status == 413
    assert "EDGERELAY_MAX_BODY_BYTES" in error_of(response)["message"]


def test_models_lists_mock_aliases_and_configured_models():
    config = '[aliases]\nfast = "openai/gpt-4.1-mini"\n[providers.groq]\nkind = "openai"\n'
    config += 'base_url = "https://api.groq.com/openai/v1"\nmodels = ["llama-3.3-70b"]\n'
    gateway, fetch = make_gateway(EDGERELAY_CONFIG=config)
    response, _ = call(gateway, "GET", "/v1/models")
    listed = json.loads(response.body)
    assert listed["object"] == "list"
    assert [m["id"] for m in listed["data"]] == ["mock/echo", "fast", "groq/llama-3.3-70b"]
    assert fetch.requests == []


def test_unconfigured_provider_is_503_naming_the_variable():
    gateway, fetch = make_gateway()
    for model, variable in [
        ("gpt-4.1", "OPENAI_API_KEY"),
        ("claude-sonnet-4-5", "ANTHROPIC_API_KEY"),
        ("gemini/gemini-2.5-flash", "GEMINI_API_KEY"),
    ]:
        response, _ = call(gateway, body={**CHAT, "model": model})
        assert response.status == 503
        assert variable in error_of(response)["message"]
    assert fetch.requests == []


def openai_upstream(chunks, status=200, headers=None):
    base = {"content-type": "text/event-stream", "set-cookie": "a=b", "openai-organization": "org"}
    return lambda request: FakeResponse(status, {**base, **(headers or {})}, chunks)


def test_openai_stream_passes_upstream_bytes_unchanged_and_filters_headers():
    upstream = [b'data: {"x": 1}\n', b"\ndata: [DO", b"NE]\n\n"]
    gateway, fetch = make_gateway(
        openai_upstream(upstream, headers={"x-request-id": "r1"}), OPENAI_ENV
    )
    response, chunks = call(gateway, body={**CHAT, "model": "openai/gpt-4.1-mini", "stream": True})
    # The same bytes, passed on as soon as each event is whole (the observer cuts on events).
    assert b"".join(chunks) == b"".join(upstream)
    assert chunks == [b'data: {"x": 1}\n\n', b"data: [DONE]\n\n"]
    names = {k for k, _ in response.headers}
    assert "set-cookie" not in names and "openai-organization" not in names
    assert ("x-request-id", "r1") in response.headers
    (sent,) = fetch.requests
    assert sent.url == "https://api.openai.com/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-secret"
    assert json.loads(sent.body)["model"] == "gpt-4.1-mini"  # the prefix is stripped
    assert fetch.responses[0].closed


def test_openai_body_is_forwarded_byte_for_byte_when_the_model_name_is_unchanged():
    gateway, fetch = make_gateway(openai_upstream([b"{}"]), OPENAI_ENV)
    raw = b'{"model": "gpt-4.1",   "messages": [{"role": "user", "content": "x"}]}'
    call(gateway, body=raw)
    assert fetch.requests[0].body == raw


def test_model_routing_prefixes_aliases_and_bare_names():
    config = '[aliases]\nfast = "groq/llama"\n[providers.groq]\nbase_url = "https://g.test/v1"\n'
    env = {**OPENAI_ENV, "EDGERELAY_CONFIG": config}
    gateway, fetch = make_gateway(openai_upstream([b"{}"]), env)
    for model in ["meta-llama/Llama-3.1-8B-Instruct", "fast", "unknown/x"]:
        call(gateway, body={**CHAT, "model": model})
    urls = [r.url for r in fetch.requests]
    models = [json.loads(r.body)["model"] for r in fetch.requests]
    assert urls == [
        "https://api.openai.com/v1/chat/completions",
        "https://g.test/v1/chat/completions",
        "https://api.openai.com/v1/chat/completions",
    ]
    assert models == ["meta-llama/Llama-3.1-8B-Instruct", "llama", "unknown/x"]
    assert "authorization" not in fetch.requests[1].headers  # groq named no key variable


def test_unknown_mock_model_is_404():
    gateway, _ = make_gateway()
    response, _ = call(gateway, body={**CHAT, "model": "mock/nope"})
    assert response.status == 404
    assert error_of(response)["code"] == "model_not_found"


def test_upstream_error_keeps_status_and_message_and_never_the_key():
    body = json.dumps(
        {
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "code": "rate_limit_exceeded",
            }
        }
    )
    upstream = openai_upstream([body.encode()], 429, {"retry-after": "7"})
    gateway, fetch = make_gateway(upstream, OPENAI_ENV)
    response, _ = call(gateway, body={**CHAT, "model": "gpt-4.1"})
    assert response.status == 429
    error = error_of(response)
    assert error["message"] == "Rate limit reached"
    assert error["code"] == "rate_limit_exceeded"
    assert ("retry-after", "7") in response.headers
    assert b"sk-test-secret" not in response.body
    assert fetch.responses[0].closed


def test_unreachable_upstream_is_502_and_timeout_504():
    def down(request):
        raise FetchError("connection failed (Connection refused)")

    gateway, _ = make_gateway(down, OPENAI_ENV)
    response, _ = call(gateway, body={**CHAT, "model": "gpt-4.1"})
    assert response.status == 502
    assert "openai" in error_of(response)["message"]

    def slow(request):
        raise FetchError("timed out", timeout=True)

    gateway, _ = make_gateway(slow, OPENAI_ENV)
    assert call(gateway, body={**CHAT, "model": "gpt-4.1"})[0].status == 504


def test_a_bug_becomes_a_clean_500_without_traceback():
    def broken(request):
        raise ZeroDivisionError("boom")

    gateway, _ = make_gateway(broken, OPENAI_ENV)
    response, _ = call(gateway, body={**CHAT, "model": "gpt-4.1"})
    assert response.status == 500
    assert b"boom" not in response.body and b"Traceback" not in response.body


def deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize("model", ["mock/echo", "openai/gpt-4.1", "claude-x", "gemini-2.5-flash"])
def test_a_request_nested_deeper_than_the_limit_is_400_before_it_is_parsed(model):
    # Under Pyodide json.loads of ~6000 levels is a fatal stack overflow of the whole Worker,
    # not a RecursionError: the depth is checked first, for every provider.
    env = {"OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g"}
    gateway, _ = make_gateway(lambda request: FakeResponse(200, {}, [b"{}"]), env)
    head = '{"model": "' + model + '", "messages": [{"role": "user", "content": "x"}], '
    # The body object is one level: MAX_DEPTH - 1 more are allowed inside it.
    response, _ = call(gateway, body=(head + '"metadata": ' + deep(MAX_DEPTH - 1) + "}").encode())
    assert response.status != 400
    response, _ = call(gateway, body=(head + '"metadata": ' + deep(MAX_DEPTH) + "}").encode())
    assert response.status == 400
    assert error_of(response) == {
        "message": f"The request body is nested too deeply (more than {MAX_DEPTH} levels).",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }


def test_a_lone_surrogate_escape_is_carried_as_the_same_escape_never_a_500():
    # "\ud83d" alone is valid JSON (an escape) but no UTF-8 can hold it: it goes on as written.
    raw = b'{"model": "%s", "messages": [{"role": "user", "content": "cut \\ud83d"}]}'
    env = {"OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g"}
    gateway, fetch = make_gateway(lambda request: FakeResponse(200, {}, [b"{}"]), env)
    response, _ = call(gateway, body=raw % b"mock/echo")
    assert response.status == 200
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "cut \ud83d"
    response, chunks = call(gateway, body=raw.replace(b"{", b'{"stream": true, ', 1) % b"mock/echo")
    assert [json.loads(d) for d in frames(chunks)[:-1]][2]["choices"][0]["delta"] == {
        "content": " \ud83d"
    }
    for model in (b"openai/gpt-4.1", b"anthropic/claude-x", b"gemini/gemini-2.5-flash"):
        call(gateway, body=raw % model)
        assert b"cut \\ud83d" in fetch.requests[-1].body
        assert "cut \ud83d" in json.dumps(json.loads(fetch.requests[-1].body), ensure_ascii=False)


def test_mock_echo_takes_only_the_string_texts_of_parts():
    gateway, _ = make_gateway()
    parts = [{"type": "text", "text": 5}, {"type": "text", "text": "hi"}, {"type": "text"}]
    body = {**CHAT, "messages": [{"role": "user", "content": parts}]}
    response, _ = call(gateway, body=body)
    assert response.status == 200
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "hi"


@pytest.mark.parametrize("model", ["gpt-4.1", "claude-x", "gemini-2.5-flash"])
def test_an_upstream_error_body_nested_too_deeply_still_gives_a_clean_error(model):
    env = {"OPENAI_API_KEY": "o", "ANTHROPIC_API_KEY": "a", "GEMINI_API_KEY": "g"}
    body = b'{"error": ' + b"[" * 60_000  # under the 64 KiB read for the message
    gateway, _ = make_gateway(lambda request: FakeResponse(429, {}, [body]), env)
    response, _ = call(gateway, body={**CHAT, "model": model})
    assert response.status == 429
    assert "429" in error_of(response)["message"]


def test_upstream_errors_keep_rate_limit_headers_and_an_http_date_retry_after():
    headers = {
        "retry-after": "Wed, 21 Oct 2026 07:28:00 GMT",
        "x-ratelimit-remaining-requests": "0",
        "x-request-id": "req-9",
        "set-cookie": "a=b",
        "openai-organization": "org-1",
    }
    body = json.dumps({"error": {"message": "slow down", "type": "requests"}}).encode()
    gateway, _ = make_gateway(openai_upstream([body], 429, headers), OPENAI_ENV)
    response, _ = call(gateway, body={**CHAT, "model": "gpt-4.1"})
    got = response.headers
    assert response.status == 429
    assert ("retry-after", "Wed, 21 Oct 2026 07:28:00 GMT") in got
    assert [k for k, _ in got].count("retry-after") == 1
    assert ("x-ratelimit-remaining-requests", "0") in got
    assert ("x-request-id", "req-9") in got
    assert all(k not in ("set-cookie", "openai-organization") for k, _ in got)
    assert dict(got)["content-type"] == "application/json"


def test_more_messages_than_the_limit_is_400_naming_messages():
    gateway, _ = make_gateway(EDGERELAY_MAX_MESSAGES="3")
    messages = [{"role": "user", "content": str(i)} for i in range(4)]
    response, _ = call(gateway, body={"model": "mock/echo", "messages": messages})
    assert response.status == 400
    error = error_of(response)
    assert (error["param"], error["code"]) == ("messages", "too_many_messages")
    assert "EDGERELAY_MAX_MESSAGES" in error["message"]
    assert call(gateway, body={"model": "mock/echo", "messages": messages[:3]})[0].status == 200


def test_more_json_values_than_the_limit_is_400_before_parsing():
    gateway, _ = make_gateway(EDGERELAY_MAX_REQUEST_VALUES="50")
    numbers = {**CHAT, "metadata": {"v": list(range(60))}}
    response, _ = call(gateway, body=numbers)
    assert response.status == 400
    error = error_of(response)
    assert error["code"] == "too_many_values"
    assert "EDGERELAY_MAX_REQUEST_VALUES" in error["message"]
    # Commas and brackets inside strings are not values.
    text = {**CHAT, "messages": [{"role": "user", "content": ",[{" * 500}]}
    assert call(gateway, body=text)[0].status == 200
