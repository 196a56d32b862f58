"""Streams that break after the first byte, on Lambda: the streaming loop (in-process, with
the fake Runtime API) and the buffered handler both end the body with the terminal error of
the route's own protocol; the streaming loop also sets the error trailers."""

from __future__ import annotations

import asyncio
import json

import pytest

from edgerelay.core.observer import events
from functions.aws_lambda.app import create_app
from functions.aws_lambda.handler import BufferedHandler
from functions.aws_lambda.runtime_api import RuntimeAPI
from functions.aws_lambda.stream_loop import StreamLoop
from tests.aws_lambda.fake_runtime import WAIT
from tests.aws_lambda.lambda_events import chat, event
from tests.core.test_observer import COMPLETE, FIRST_EVENT, anthropic
from tests.support.fake_fetch import FakeFetch, FakeResponse

SSE = {"content-type": "text/event-stream"}
ENV = {
    "EDGERELAY_ALLOW_ANONYMOUS": "true",  # Lambda is a public target
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    "OPENAI_API_KEY": "sk-o",
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "ANTHROPIC_API_KEY": "sk-a",
    "GEMINI_BASE_URL": "http://127.0.0.1:9",
    "GEMINI_API_KEY": "g",
}
GEMINI = "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
ROUTES = [
    ("/openai/v1/chat/completions", "chat", SSE),
    ("/openai/v1/responses", "responses", SSE),
    ("/anthropic/v1/messages", "anthropic", SSE),
    (GEMINI, "gemini", SSE),
    (GEMINI, "gemini-json", {"content-type": "application/json"}),
]


def cut_upstream(protocol: str, headers=SSE) -> FakeResponse:
    data, first = COMPLETE[protocol], FIRST_EVENT[protocol]
    chunks = [data[:first], data[first : first + 12]]
    return FakeResponse(200, headers, chunks, error_after=len(chunks))


def check_terminal(protocol: str, body: bytes, first: bytes) -> None:
    assert body.startswith(first)
    rest = body[len(first) :]
    if protocol == "gemini-json":
        assert json.loads(body)[-1]["error"]["code"] == 502
        return
    (last,) = events(rest)  # the half event was dropped: only the terminal error follows
    if protocol == "responses":
        assert last.event == "response.failed"
        assert "broke off" in json.loads(last.data)["response"]["error"]["message"]
    elif protocol == "anthropic":
        assert last.event == "error"
        assert "broke off" in json.loads(last.data)["error"]["message"]
    else:
        assert "broke off" in json.loads(last.data)["error"]["message"]


def run_loop(runtime, app) -> None:
    loop = StreamLoop(RuntimeAPI(runtime.address), app)
    asyncio.run(asyncio.wait_for(loop.run(max_invocations=1), WAIT))


@pytest.mark.parametrize(("path", "protocol", "headers"), ROUTES)
def test_streaming_loop_native_route_cut_mid_way(runtime, path, protocol, headers):
    upstream = cut_upstream(protocol, headers)
    app = create_app(ENV, FakeFetch(lambda r: upstream))
    outcome = runtime.invoke(event("function-url", b"{}", path=path))
    run_loop(runtime, app)

    assert outcome.prelude["statusCode"] == 200
    check_terminal(protocol, outcome.body, COMPLETE[protocol][: FIRST_EVENT[protocol]])
    assert outcome.clean_end
    assert outcome.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.UpstreamError"
    assert upstream.closed


@pytest.mark.parametrize(("path", "protocol", "headers"), ROUTES)
def test_buffered_handler_native_route_cut_mid_way(path, protocol, headers):
    upstream = cut_upstream(protocol, headers)
    handler = BufferedHandler.from_env(ENV, FakeFetch(lambda r: upstream))
    try:
        result = handler(event("http-api-v2", b"{}", path=path), None)
    finally:
        handler.close()
    assert result["statusCode"] == 200
    check_terminal(protocol, result["body"].encode(), COMPLETE[protocol][: FIRST_EVENT[protocol]])
    assert upstream.closed


def test_streaming_loop_translated_route_cut_mid_way(runtime):
    frames = [
        anthropic("message_start", message={"id": "msg_1", "model": "c", "content": []}),
        # Content first: a stream that breaks before any content is retried instead.
        anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""})
        + anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
        b"event: content_block_delta\ndata: {",
    ]
    upstream = FakeResponse(200, SSE, frames, error_after=3)
    app = create_app(ENV, FakeFetch(lambda r: upstream))
    outcome = runtime.invoke(event("function-url", chat("anthropic/claude-x")))
    run_loop(runtime, app)

    parsed = events(outcome.body)
    assert json.loads(parsed[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert "broke off" in json.loads(parsed[-1].data)["error"]["message"]
    assert outcome.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.UpstreamError"


def test_streaming_loop_chat_stream_without_done(runtime):
    data = COMPLETE["chat"][: FIRST_EVENT["chat"]]
    upstream = FakeResponse(200, SSE, [data])  # a clean end, but no [DONE]
    app = create_app(ENV, FakeFetch(lambda r: upstream))
    outcome = runtime.invoke(event("function-url", chat("openai/gpt-x")))
    run_loop(runtime, app)

    assert outcome.body.startswith(data)
    assert b"[DONE]" not in outcome.body
    last = json.loads(events(outcome.body)[-1].data)
    assert last["error"]["message"] == "The upstream stream ended before the answer was complete."
    assert outcome.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.UpstreamError"
