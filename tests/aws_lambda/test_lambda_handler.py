"""The buffered handler with HTTP API 2.0, Function URL 2.0 and REST API 1.0 event fixtures, for
stream and non-stream requests; and the event decoding underneath it."""

from __future__ import annotations

import asyncio
import base64
import json

import pytest

from functions.aws_lambda.events import EventError, decode_event, prelude, proxy_response
from functions.aws_lambda.handler import BufferedHandler
from tests.aws_lambda.conftest import ANONYMOUS
from tests.aws_lambda.lambda_events import KINDS, chat, event
from tests.support.fake_fetch import FakeFetch, FakeResponse, split_every
from tests.support.loopback import Reply

SSE = {"content-type": "text/event-stream"}
UPSTREAM_SSE = (
    b"".join(
        b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"' + word + b'"}}]}\n\n'
        for word in (b"Hi", b" there", b"!")
    )
    + b"data: [DONE]\n\n"
)


class Context:
    """The parts of Lambda's context object the handler reads."""

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self.remaining_ms = remaining_ms
        self.aws_request_id = "c6af9ac6-7b61-11e6-9a41-93e8deadbeef"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def handler_for():
    made: list[BufferedHandler] = []

    def make(env=None, fetch=None) -> BufferedHandler:
        env = {**ANONYMOUS, **(env or {})}
        handler = BufferedHandler.from_env(env, fetch or FakeFetch(lambda r: FakeResponse()))
        made.append(handler)
        return handler

    yield make
    for handler in made:
        handler.close()


def sse_events(body: str) -> list[str]:
    return [frame[len("data: ") :] for frame in body.split("\n\n") if frame]


@pytest.mark.parametrize("kind", KINDS)
def test_stream_request_returns_the_whole_event_stream_as_one_body(handler_for, kind):
    result = handler_for()(event(kind, chat(text="one two three")), Context())

    assert result["statusCode"] == 200
    assert result["headers"]["content-type"].startswith("text/event-stream")
    assert result["isBase64Encoded"] is False
    frames = sse_events(result["body"])
    assert frames[-1] == "[DONE]"
    words = [json.loads(f)["choices"][0]["delta"].get("content") for f in frames[:-1]]
    assert "".join(w for w in words if w) == "one two three"


@pytest.mark.parametrize("kind", KINDS)
def test_non_stream_request_returns_json(handler_for, kind):
    result = handler_for()(event(kind, chat(text="echo me", stream=False)), Context())

    assert result["statusCode"] == 200
    assert result["headers"]["content-type"] == "application/json"
    answer = json.loads(result["body"])
    assert answer["object"] == "chat.completion"
    assert answer["choices"][0]["message"]["content"] == "echo me"


@pytest.mark.parametrize("kind", KINDS)
def test_errors_are_json_with_their_status(handler_for, kind):
    handler = handler_for()
    unknown = handler(event(kind, None, method="GET", path="/v2/nothing"), Context())
    wrong_method = handler(event(kind, None, method="GET"), Context())
    bad_body = handler(event(kind, b"[1, 2"), Context())

    assert unknown["statusCode"] == 404
    assert wrong_method["statusCode"] == 405 and wrong_method["headers"]["allow"] == "POST"
    assert bad_body["statusCode"] == 400
    for result in (unknown, wrong_method, bad_body):
        assert json.loads(result["body"])["error"]["message"]


def test_upstream_stream_is_relayed_byte_for_byte(handler_for):
    fetch = FakeFetch(lambda r: FakeResponse(200, SSE, split_every(UPSTREAM_SSE, 7)))
    handler = handler_for({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, fetch)
    result = handler(event("http-api-v2", chat("openai/gpt-4.1-mini")), Context())

    assert result["statusCode"] == 200
    assert result["body"].encode() == UPSTREAM_SSE
    assert fetch.responses[0].closed


def test_upstream_cut_keeps_whole_events_and_ends_with_an_error_event(handler_for):
    chunks = split_every(UPSTREAM_SSE, 40)
    fetch = FakeFetch(lambda r: FakeResponse(200, SSE, chunks, error_after=3))
    handler = handler_for({"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}, fetch)
    result = handler(event("rest-api-v1", chat("openai/gpt-4.1-mini")), Context())

    assert result["statusCode"] == 200
    frames = sse_events(result["body"])
    error = json.loads(frames[-1])["error"]
    assert error["message"].startswith("The upstream stream broke off")
    for frame in frames[:-1]:  # everything before it parses: no half event glued on
        assert json.loads(frame)["choices"]


def test_deadline_ends_an_event_stream_with_a_timeout_event(handler_for):
    class Stalling(FakeResponse):
        async def aiter_bytes(self):
            yield b'data: {"n":1}\n\n'
            await asyncio.sleep(30)

    fetch = FakeFetch(lambda r: Stalling(200, SSE))
    env = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "EDGERELAY_DEADLINE_MARGIN_MS": "100"}
    result = handler_for(env, fetch)(event("function-url", chat("openai/x")), Context(300))

    frames = sse_events(result["body"])
    assert frames[0] == '{"n":1}'
    assert json.loads(frames[-1])["error"]["code"] == "timeout"
    assert fetch.responses[0].closed


def test_warm_invocations_reuse_one_gateway_and_loop(handler_for):
    handler = handler_for()
    gateway, loop = handler.app.gateway, handler.loop
    for i in range(5):
        result = handler(event(KINDS[i % 3], chat(text=f"n{i}", stream=False)), Context())
        assert json.loads(result["body"])["choices"][0]["message"]["content"] == f"n{i}"
    assert handler.app.gateway is gateway and handler.loop is loop


def test_real_httpx_fetch_against_a_loopback_upstream(upstream):
    upstream.handler = lambda seen: Reply(200, SSE, split_every(UPSTREAM_SSE, 11))
    handler = BufferedHandler.from_env(
        {**ANONYMOUS, "OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-upstream"}
    )
    try:
        for kind in KINDS:
            result = handler(event(kind, chat("openai/gpt-4.1-mini")), Context())
            assert result["body"].encode() == UPSTREAM_SSE
    finally:
        handler.close()
    assert [s.headers["Authorization"] for s in upstream.seen] == ["Bearer sk-upstream"] * 3


def test_bad_configuration_is_a_503_naming_the_setting_without_secrets(handler_for):
    handler = handler_for({"EDGERELAY_MAX_STREAM_SECONDS": "soon", "OPENAI_API_KEY": "sk-hidden"})
    result = handler(event("http-api-v2", chat()), Context())

    assert result["statusCode"] == 503
    error = json.loads(result["body"])["error"]
    assert "EDGERELAY_MAX_STREAM_SECONDS" in error["message"]
    assert error["code"] == "bad_configuration"
    assert "sk-hidden" not in json.dumps(result)


def test_a_key_pasted_into_a_lambda_setting_is_never_repeated(handler_for, caplog):
    misplaced = "sk-proj-pasted-in-the-wrong-box"
    handler = handler_for({"EDGERELAY_MAX_STREAM_BYTES": misplaced})
    result = handler(event("http-api-v2", chat()), Context())

    assert result["statusCode"] == 503
    assert "EDGERELAY_MAX_STREAM_BYTES" in caplog.text  # the setting is named in the log
    assert misplaced not in json.dumps(result) + caplog.text


def test_events_that_are_not_http_get_a_400(handler_for):
    for bad in ({}, {"Records": []}, [], "text", {"version": "2.0"}):
        result = handler_for()(bad, Context())
        assert result["statusCode"] == 400
        message = json.loads(result["body"])["error"]["message"]
        assert message.startswith(("Not an HTTP event", "The invocation payload is not"))


def test_a_bad_base64_body_is_a_400(handler_for):
    broken = event("function-url", chat())
    broken["body"] = "not//base64!"
    result = handler_for()(broken, Context())
    assert result["statusCode"] == 400


# --- event decoding ---------------------------------------------------------------------------


def test_decode_http_api_v2():
    decoded = decode_event(event("http-api-v2", b'{"x":1}'))
    request = decoded.request
    assert decoded.version == "2.0" and decoded.error is None
    assert (request.method, request.path, request.query) == (
        "POST",
        "/v1/chat/completions",
        "trace=1&x=a%20b",
    )
    assert request.headers["content-type"] == "application/json"
    assert request.headers["cookie"] == "session=abc; theme=dark"
    assert request.body == b'{"x":1}'
    assert request.client_ip == "205.255.255.176"


def test_decode_function_url_base64_body():
    decoded = decode_event(event("function-url", b"\x00\xffbinary"))
    assert decoded.request.body == b"\x00\xffbinary"
    assert decoded.request.client_ip == "198.51.100.23"
    assert decoded.request.headers["origin"] == "https://app.example"


def test_decode_rest_api_v1():
    decoded = decode_event(event("rest-api-v1", b"{}"))
    request = decoded.request
    assert decoded.version == "1.0"
    assert request.path == "/v1/chat/completions"  # the stage is not part of it
    assert request.query == "trace=1&x=a+b&x=c"
    assert request.headers["x-tag"] == "one, two"
    assert request.headers["user-agent"] == "OpenAI/Python 1.51.0"
    assert request.client_ip == "52.255.255.12"
    assert request.body == b"{}"


def test_decode_v1_with_null_everything():
    decoded = decode_event({"httpMethod": "GET", "path": "/healthz", "headers": None})
    assert decoded.request.path == "/healthz" and decoded.request.headers == {}
    with pytest.raises(EventError):
        decode_event({"version": "2.0", "rawPath": "/x", "requestContext": {}})


@pytest.mark.parametrize(
    ("cookies", "header"), [(5, None), ("a=1", None), ([1, "a=1", None, "b=2"], "a=1; b=2")]
)
def test_v2_cookies_that_are_not_a_list_of_strings_are_ignored_not_a_crash(
    handler_for, cookies, header
):
    malformed = {**event("http-api-v2", chat(stream=False)), "cookies": cookies}
    assert decode_event(malformed).request.headers.get("cookie") == header
    assert handler_for()(malformed, Context())["statusCode"] == 200


def test_v1_query_value_with_a_lone_surrogate_is_encoded_not_a_crash(handler_for):
    # A JSON string may hold one ("\ud800"); the body already goes through "surrogatepass".
    malformed = event("rest-api-v1", chat(stream=False))
    malformed["multiValueQueryStringParameters"] = {"x": ["a\ud800"]}
    assert decode_event(malformed).request.query == "x=a%ED%A0%80"
    assert handler_for()(malformed, Context())["statusCode"] == 200


def test_prelude_and_proxy_response_shapes():
    headers = [
        ("content-type", "text/event-stream"),
        ("set-cookie", "a=1"),
        ("x-a", "1"),
        ("x-a", "2"),
    ]
    meta, delimiter = prelude(200, headers)[:-8], prelude(200, headers)[-8:]
    assert delimiter == b"\x00" * 8
    assert json.loads(meta) == {
        "statusCode": 200,
        "headers": {"content-type": "text/event-stream", "x-a": "1, 2"},
        "cookies": ["a=1"],
    }
    v2 = proxy_response("2.0", 200, headers, b"data: x\n\n")
    assert v2["cookies"] == ["a=1"] and v2["body"] == "data: x\n\n"
    v1 = proxy_response("1.0", 200, headers, b"")
    assert v1["multiValueHeaders"] == {"set-cookie": ["a=1"]} and "cookies" not in v1
    binary = proxy_response("2.0", 200, [("content-type", "image/png")], b"\x89PNG")
    assert binary["isBase64Encoded"] and base64.b64decode(binary["body"]) == b"\x89PNG"


@pytest.mark.parametrize("kind", KINDS)
def test_responses_route_streamed_and_stored_across_warm_invocations(handler_for, kind):
    handler = handler_for()
    body = {"model": "mock/echo", "input": "one two", "stream": True}
    result = handler(event(kind, body, path="/v1/responses"), Context())
    assert result["statusCode"] == 200
    frames = [f for f in result["body"].split("\n\n") if f]
    assert frames[0].startswith("event: response.created")
    final = json.loads(frames[-1].split("data: ", 1)[1])
    assert final["type"] == "response.completed"
    follow = {
        "model": "mock/echo",
        "input": "three",
        "previous_response_id": final["response"]["id"],
    }
    again = handler(event(kind, follow, path="/v1/responses"), Context())
    assert again["statusCode"] == 200
    assert json.loads(again["body"])["output"][0]["content"][0]["text"] == "three"
