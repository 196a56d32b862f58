"""The hardening limits on Lambda, through both entry points (the streaming loop with the fake
Runtime API, and the buffered handler): an oversized answer or event, a request past the
message or value count or holding a non-finite number, a provider key echoed by an upstream
error, and an upstream that never accepts the connection."""

from __future__ import annotations

import asyncio
import json
import logging
import socket

import pytest

from edgerelay.core.observer import events
from functions.aws_lambda.app import create_app
from functions.aws_lambda.handler import BufferedHandler
from functions.aws_lambda.runtime_api import RuntimeAPI
from functions.aws_lambda.stream_loop import StreamLoop
from tests.aws_lambda.fake_runtime import WAIT
from tests.aws_lambda.lambda_events import chat, event
from tests.core.test_event_cap import OVERSIZED, anthropic_stream, oversized, terminal_error
from tests.support.fake_fetch import FakeFetch, FakeResponse

SSE = {"content-type": "text/event-stream"}
JSON = {"content-type": "application/json"}
KEY = "sk-proj-lambda-0123456789-abcdefgh"
ENV = {
    "EDGERELAY_ALLOW_ANONYMOUS": "true",  # Lambda is a public target
    "OPENAI_BASE_URL": "http://127.0.0.1:9/v1",
    "OPENAI_API_KEY": KEY,
    "ANTHROPIC_BASE_URL": "http://127.0.0.1:9",
    "ANTHROPIC_API_KEY": "sk-a",
    "GEMINI_BASE_URL": "http://127.0.0.1:9",
    "GEMINI_API_KEY": "g",
}
GEMINI = "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
NATIVE = [
    ("/openai/v1/chat/completions", "chat", SSE),
    ("/openai/v1/responses", "responses", SSE),
    ("/anthropic/v1/messages", "anthropic", SSE),
    (GEMINI + "?alt=sse", "gemini", SSE),
    (GEMINI, "gemini-json", JSON),
]


class Answer:
    """What one entry point answered: status, whole body, and the error trailers (the
    buffered handler has none)."""

    def __init__(self, status: int, headers, body: bytes, trailers: dict | None) -> None:
        self.status, self.headers, self.body, self.trailers = status, headers, body, trailers

    def json(self) -> dict:
        return json.loads(self.body)


def lambda_event(body, path: str) -> dict:
    built = event("function-url", body, path=path.partition("?")[0])
    if "?" in path:
        built["rawQueryString"] = path.partition("?")[2]
    return built


def through(entry: str, env: dict, fetch, body, path: str = "", runtime=None) -> Answer:
    if entry == "loop":
        app = create_app({**ENV, **env}, fetch)
        outcome = runtime.invoke(lambda_event(body, path))
        loop = StreamLoop(RuntimeAPI(runtime.address), app)
        asyncio.run(asyncio.wait_for(loop.run(max_invocations=1), WAIT))
        prelude = outcome.prelude
        return Answer(prelude["statusCode"], prelude.get("headers"), outcome.body, outcome.trailers)
    handler = BufferedHandler.from_env({**ENV, **env}, fetch)
    try:
        result = handler(lambda_event(body, path), None)
    finally:
        handler.close()
    return Answer(result["statusCode"], result.get("headers"), result["body"].encode(), None)


ENTRIES = ["loop", "buffered"]


@pytest.fixture
def call(request, runtime):
    def run(entry, env, fetch, body, path=""):
        return through(entry, env, fetch, body, path, runtime)

    return run


@pytest.mark.parametrize("entry", ENTRIES)
def test_an_answer_past_max_response_bytes_is_502_and_reading_stops(call, entry):
    upstream = FakeResponse(200, JSON, [b'{"x":"' + b"a" * 1000] * 100)
    answer = call(
        entry,
        {"EDGERELAY_MAX_RESPONSE_BYTES": "4096"},
        FakeFetch(lambda r: upstream),
        chat("anthropic/claude-x", stream=False),
    )
    assert answer.status == 502
    assert answer.json()["error"]["code"] == "response_too_large"
    assert "EDGERELAY_MAX_RESPONSE_BYTES" in answer.json()["error"]["message"]
    assert upstream.read_chunks < 10 and upstream.closed


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(("path", "protocol", "headers"), NATIVE)
def test_a_passthrough_event_past_max_event_bytes_ends_the_stream(
    call, entry, path, protocol, headers
):
    upstream = FakeResponse(200, headers, oversized(protocol, 100))
    env = {"EDGERELAY_MAX_EVENT_BYTES": "8192"}
    answer = call(entry, env, FakeFetch(lambda r: upstream), {"stream": True}, path)
    assert answer.status == 200
    assert answer.body.startswith(OVERSIZED[protocol][0])
    assert "EDGERELAY_MAX_EVENT_BYTES" in terminal_error(protocol, answer.body)["message"]
    assert upstream.read_chunks < 20 and upstream.closed
    if entry == "loop":
        assert answer.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.UpstreamError"


@pytest.mark.parametrize("entry", ENTRIES)
def test_a_translated_event_past_max_event_bytes_ends_the_stream(call, entry):
    upstream = FakeResponse(200, SSE, anthropic_stream(100))
    env = {"EDGERELAY_MAX_EVENT_BYTES": "8192"}
    answer = call(entry, env, FakeFetch(lambda r: upstream), chat("anthropic/claude-x"))
    assert answer.status == 200
    parsed = events(answer.body)
    assert json.loads(parsed[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert json.loads(parsed[-1].data)["error"]["code"] == "event_too_large"
    assert upstream.read_chunks < 20 and upstream.closed


def many_messages(n: int) -> dict:
    return {"model": "mock/echo", "messages": [{"role": "user", "content": "x"}] * n}


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize(
    ("env", "body", "param"),
    [
        ({"EDGERELAY_MAX_MESSAGES": "3"}, many_messages(4), "messages"),
        ({"EDGERELAY_MAX_REQUEST_VALUES": "50"}, many_messages(20), None),
        ({}, b'{"model":"mock/echo","temperature":1e400,"messages":[]}', "temperature"),
    ],
    ids=["max-messages", "max-request-values", "non-finite"],
)
def test_requests_past_the_request_limits_are_400_before_any_upstream_call(
    call, entry, env, body, param
):
    fetch = FakeFetch(lambda r: FakeResponse(200, JSON, [b"{}"]))
    answer = call(entry, env, fetch, body, "/v1/chat/completions")
    assert answer.status == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    if param is not None:
        assert error["param"] == param
    assert fetch.requests == []


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/openai/v1/chat/completions"])
def test_a_provider_key_echoed_by_an_upstream_error_is_redacted_in_body_header_and_log(
    call, entry, path, caplog
):
    echoed = json.dumps({"error": {"message": f"bad key Bearer {KEY} (sk-pr****cdefgh)"}})

    def echoing(request):
        assert request.headers["authorization"] == f"Bearer {KEY}"  # the real key went up
        logging.getLogger("edgerelay").warning("upstream said %s", echoed)
        return FakeResponse(401, {**JSON, "x-request-id": KEY}, [echoed.encode()])

    with caplog.at_level(logging.WARNING, logger="edgerelay"):
        answer = call(entry, {}, FakeFetch(echoing), chat("openai/gpt-x", stream=False), path)
    assert answer.status == 401
    assert KEY.encode() not in answer.body and b"[redacted]" in answer.body
    assert "x-request-id" in json.dumps(answer.headers) and KEY not in json.dumps(answer.headers)
    assert "upstream said" in caplog.text
    assert KEY not in caplog.text  # create_app put the redactor on the log handlers


@pytest.fixture
def unaccepting():
    """A loopback port whose accept queue is full: a further connect gets no answer (its SYN
    is dropped), as a host that blackholes traffic."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    fillers = []
    for _ in range(4):  # backlog 0 still queues one or two: fill whatever it holds
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(server.getsockname())
        fillers.append(filler)
    try:
        yield f"http://127.0.0.1:{server.getsockname()[1]}"
    finally:
        for filler in fillers:
            filler.close()
        server.close()


@pytest.mark.parametrize("entry", ENTRIES)
def test_an_upstream_that_never_accepts_is_504_within_the_connect_timeout(call, entry, unaccepting):
    env = {
        "OPENAI_BASE_URL": unaccepting + "/v1",
        "EDGERELAY_CONNECT_TIMEOUT": "0.3",
        "EDGERELAY_UPSTREAM_TIMEOUT": "600",  # only the connect timeout can end the wait
    }
    answer = call(entry, env, None, chat("openai/gpt-x", stream=False), "/v1/chat/completions")
    assert answer.status == 504
    assert answer.json()["error"]["code"] == "timeout"
