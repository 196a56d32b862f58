"""Retries, fallbacks and timeouts through the real server (uvicorn + aiohttp/httpx) against a
loopback upstream that misbehaves as each test tells it. The gateway's sleep is injected: each
test asserts the waits the policy asked for, never how long anything took. Every test also
asserts that no upstream connection was left open."""

from __future__ import annotations

import asyncio
import json
import socket
import threading

import httpx
import pytest

from tests.support import anthropic_wire as aw
from tests.support.faults import (
    WAIT,
    Blackhole,
    Fault,
    FaultUpstream,
    json_fault,
    refused_url,
    sse_fault,
)
from tests.support.loopback import GatewayServer, sse_frames
from tests.support.openai_wire import openai_chunks

NOW = 1_760_000_000.0  # 2025-10-09T08:53:20Z, the gateway's injected clock
KEY = "sk-test-not-a-real-key"
ANSWER = {
    "id": "chatcmpl-up",
    "object": "chat.completion",
    "created": 1,
    "model": "gpt-4.1-mini",
    "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}
    ],
}


class Waits:
    """The injected sleep: records each wait and returns at once."""

    def __init__(self) -> None:
        self.asked: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.asked.append(seconds)


def gateway(env: dict, waits: Waits, http_client: str = "aiohttp") -> GatewayServer:
    return GatewayServer(
        env, http_client, sleep=waits, clock=lambda: NOW, random=lambda: 0.5
    ).__enter__()


def openai_env(upstream_url: str, **extra: str) -> dict:
    return {"OPENAI_BASE_URL": upstream_url + "/v1", "OPENAI_API_KEY": KEY, **extra}


def chat(url: str, model: str = "gpt-4.1-mini", **body) -> httpx.Response:
    payload = {"model": model, "messages": [{"role": "user", "content": "Hi"}], **body}
    return httpx.post(url + "/v1/chat/completions", json=payload, timeout=WAIT)


def run(script, *, env=None, model="gpt-4.1-mini", http_client="aiohttp", **body):
    """One request through a fresh gateway and fault upstream: (response, waits, upstream)."""
    waits = Waits()
    with FaultUpstream(script) as upstream:
        server = gateway({**openai_env(upstream.url), **(env or {})}, waits, http_client)
        try:
            response = chat(server.url, model, **body)
        finally:
            server.__exit__(None, None, None)
        assert upstream.wait_all_closed(), "an upstream connection was left open"
    return response, waits.asked, upstream


def attempts(response: httpx.Response) -> int:
    return int(response.headers["x-edgerelay-attempts"])


# -- retried statuses and the waits they ask for ----------------------------------------------


@pytest.mark.parametrize("status", [408, 409, 429, 500, 502, 503, 504, 529])
def test_a_retryable_status_then_success(status):
    failure = json_fault(status, {"error": {"message": "try again", "type": "server_error"}})
    response, waits, upstream = run([failure, json_fault(200, ANSWER)])
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "hi"
    assert attempts(response) == 2
    assert response.headers["x-edgerelay-target"] == "openai/gpt-4.1-mini"
    assert waits == [0.25]  # full jitter: random 0.5 of the first cap, EDGERELAY_RETRY_BASE 0.5
    assert len(upstream.seen) == 2


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_retry_after_seconds(http_client):
    limited = json_fault(429, {"error": {"message": "slow down"}}, **{"retry-after": "2"})
    response, waits, _ = run([limited, json_fault(200, ANSWER)], http_client=http_client)
    assert (response.status_code, attempts(response), waits) == (200, 2, [2.0])


def test_retry_after_http_date_against_the_injected_clock():
    date = "Thu, 09 Oct 2025 08:53:27 GMT"  # NOW + 7 s
    limited = json_fault(503, {"error": {"message": "busy"}}, **{"retry-after": date})
    response, waits, _ = run([limited, json_fault(200, ANSWER)])
    assert (response.status_code, attempts(response), waits) == (200, 2, [7.0])


def test_retry_after_ms():
    limited = json_fault(429, {"error": {"message": "slow"}}, **{"retry-after-ms": "1500"})
    response, waits, _ = run([limited, json_fault(200, ANSWER)])
    assert (response.status_code, attempts(response), waits) == (200, 2, [1.5])


GEMINI_ANSWER = {
    "candidates": [
        {"content": {"role": "model", "parts": [{"text": "hi"}]}, "finishReason": "STOP"}
    ],
    "usageMetadata": {"promptTokenCount": 1, "candidatesTokenCount": 1, "totalTokenCount": 2},
}


def gemini_429(*details):
    error = {"code": 429, "message": "Resource exhausted", "status": "RESOURCE_EXHAUSTED"}
    return json_fault(429, {"error": {**error, "details": list(details)}})


def test_gemini_retry_info_delay():
    info = {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3s"}
    waits = Waits()
    with FaultUpstream([gemini_429(info), json_fault(200, GEMINI_ANSWER)]) as upstream:
        server = gateway({"GEMINI_BASE_URL": upstream.url, "GEMINI_API_KEY": "g"}, waits)
        try:
            response = chat(server.url, "gemini/gemini-2.5-flash")
        finally:
            server.__exit__(None, None, None)
        assert upstream.wait_all_closed()
    assert response.status_code == 200
    assert response.json()["choices"][0]["message"]["content"] == "hi"
    assert (attempts(response), waits.asked) == (2, [3.0])


def test_a_wait_longer_than_max_wait_is_not_waited_and_the_client_gets_retry_after():
    limited = json_fault(429, {"error": {"message": "later"}}, **{"retry-after": "60"})
    response, waits, upstream = run([limited, json_fault(200, ANSWER)])
    assert response.status_code == 429
    assert response.headers["retry-after"] == "60"
    assert (attempts(response), waits, len(upstream.seen)) == (1, [], 1)


def test_insufficient_quota_is_not_retried():
    quota = {
        "error": {
            "message": "You exceeded your current quota",
            "type": "insufficient_quota",
            "code": "insufficient_quota",
        }
    }
    response, waits, upstream = run([json_fault(429, quota), json_fault(200, ANSWER)])
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "insufficient_quota"
    assert (attempts(response), waits, len(upstream.seen)) == (1, [], 1)


def test_retries_run_out_and_the_last_error_goes_to_the_client():
    response, waits, upstream = run([json_fault(503, {"error": {"message": "down"}})])
    assert response.status_code == 503
    assert response.json()["error"]["message"] == "down"
    assert (attempts(response), waits, len(upstream.seen)) == (3, [0.25, 0.5], 3)


def test_a_non_json_error_body_keeps_its_status():
    html = Fault(502, {"content-type": "text/html"}, [b"<html><h1>502 Bad Gateway</h1></html>"])
    response, waits, _ = run([html], env={"EDGERELAY_RETRIES": "1"})
    assert response.status_code == 502
    assert response.json()["error"]["message"] == "The upstream answered with status 502."
    assert (attempts(response), waits) == (2, [0.25])


def test_a_client_error_is_never_retried():
    bad = json_fault(400, {"error": {"message": "bad field", "param": "x"}})
    response, waits, upstream = run([bad, json_fault(200, ANSWER)])
    assert response.status_code == 400
    assert (attempts(response), waits, len(upstream.seen)) == (1, [], 1)


# -- no answer at all ----------------------------------------------------------------------------


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_connection_refused_is_retried_then_502(http_client):
    waits = Waits()
    server = gateway(openai_env(refused_url()), waits, http_client)
    try:
        response = chat(server.url)
    finally:
        server.__exit__(None, None, None)
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "bad_gateway"
    assert (attempts(response), waits.asked) == (3, [0.25, 0.5])


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_connect_that_never_completes_times_out_and_is_retried(http_client):
    waits = Waits()
    with Blackhole() as hole:
        env = {**openai_env(hole.url), "EDGERELAY_CONNECT_TIMEOUT": "0.2", "EDGERELAY_RETRIES": "1"}
        server = gateway(env, waits, http_client)
        try:
            response = chat(server.url)
        finally:
            server.__exit__(None, None, None)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"
    assert (attempts(response), waits.asked) == (2, [0.25])


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_headers_never_sent_is_a_first_byte_timeout_then_a_retry(http_client):
    script = [Fault(silent=True), json_fault(200, ANSWER)]
    response, waits, upstream = run(
        script, env={"EDGERELAY_FIRST_BYTE_TIMEOUT": "0.2"}, http_client=http_client
    )
    assert response.status_code == 200
    assert (attempts(response), waits, len(upstream.seen)) == (2, [0.25], 2)


# -- streams: retried before the first content, never after ------------------------------------


def anthropic_env(url: str, **extra: str) -> dict:
    return {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "a-key", **extra}


def run_anthropic(script, env=None, http_client="aiohttp"):
    waits = Waits()
    with FaultUpstream(script) as upstream:
        server = gateway({**anthropic_env(upstream.url), **(env or {})}, waits, http_client)
        try:
            payload = {
                "model": "anthropic/claude-sonnet-4-5",
                "stream": True,
                "messages": [{"role": "user", "content": "Hi"}],
            }
            response = httpx.post(server.url + "/v1/chat/completions", json=payload, timeout=WAIT)
        finally:
            server.__exit__(None, None, None)
        assert upstream.wait_all_closed(), "an upstream connection was left open"
    return response, waits.asked, upstream


def data_frames(response: httpx.Response) -> list:
    out = []
    for frame in response.content.split(b"\n\n"):
        if frame.startswith(b"data: "):
            data = frame[6:]
            out.append("[DONE]" if data == b"[DONE]" else json.loads(data))
    return out


def text_of(frames: list) -> str:
    return "".join(
        f["choices"][0]["delta"].get("content") or ""
        for f in frames
        if isinstance(f, dict) and f.get("choices")
    )


GOOD = aw.text_stream("Hello", " there")
OVERLOADED = aw.event(aw.message_start()) + aw.event(
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)


def test_anthropic_overloaded_error_after_the_200_is_retried_before_any_content():
    response, waits, upstream = run_anthropic([sse_fault([OVERLOADED]), sse_fault([GOOD])])
    assert response.status_code == 200
    frames = data_frames(response)
    assert text_of(frames) == "Hello there"
    assert frames[-1] == "[DONE]"
    assert not any("error" in f for f in frames if isinstance(f, dict))
    assert (attempts(response), waits, len(upstream.seen)) == (2, [0.25], 2)


def test_anthropic_overloaded_every_time_is_a_503_status_not_a_stream():
    response, waits, _ = run_anthropic([sse_fault([OVERLOADED])], env={"EDGERELAY_RETRIES": "1"})
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "overloaded_error"
    assert (attempts(response), waits) == (2, [0.25])


def test_a_stream_cut_after_content_is_a_terminal_error_never_a_retry():
    events = [aw.event(e) for e in [aw.message_start(), *aw.text_block(0, "Hel", "lo")]]
    gate = threading.Event()  # the cut comes once the client has read the content
    cut = sse_fault(events, then="cut", after=3, gate=gate)
    waits = Waits()
    with FaultUpstream([cut, sse_fault([GOOD])]) as upstream:
        server = gateway(anthropic_env(upstream.url), waits)
        try:
            payload = {
                "model": "anthropic/claude-sonnet-4-5",
                "stream": True,
                "messages": [{"role": "user", "content": "Hi"}],
            }
            got = []
            with httpx.stream(
                "POST", server.url + "/v1/chat/completions", json=payload, timeout=WAIT
            ) as response:
                for frame in sse_frames(response):
                    got.append(frame)
                    if b'"content":"Hel"' in frame:
                        gate.set()
        finally:
            server.__exit__(None, None, None)
        assert upstream.wait_all_closed()
    assert response.status_code == 200
    frames = [json.loads(f[6:]) for f in got if f.startswith(b"data: {")]
    assert text_of(frames) == "Hel"
    assert "error" in frames[-1] and got[-1] != b"data: [DONE]"
    assert (attempts(response), waits.asked, len(upstream.seen)) == (1, [], 1)


def test_a_stream_cut_before_content_is_retried():
    cut = sse_fault([aw.event(aw.message_start())], then="cut")
    response, waits, upstream = run_anthropic([cut, sse_fault([GOOD])])
    assert response.status_code == 200
    assert text_of(data_frames(response)) == "Hello there"
    assert (attempts(response), waits, len(upstream.seen)) == (2, [0.25], 2)


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_stream_that_stalls_after_content_ends_with_an_idle_timeout_error(http_client):
    events = [aw.event(e) for e in [aw.message_start(), *aw.text_block(0, "Hel", "lo")]]
    stall = sse_fault(events, then="stall", after=3)
    response, waits, upstream = run_anthropic(
        [stall, sse_fault([GOOD])], env={"EDGERELAY_IDLE_TIMEOUT": "0.3"}, http_client=http_client
    )
    assert response.status_code == 200
    frames = data_frames(response)
    assert text_of(frames) == "Hel"
    assert "error" in frames[-1]
    assert (attempts(response), waits, len(upstream.seen)) == (1, [], 1)


def test_a_stream_that_stalls_before_content_is_retried():
    stall = sse_fault([aw.event(aw.message_start())], then="stall")
    response, waits, upstream = run_anthropic(
        [stall, sse_fault([GOOD])], env={"EDGERELAY_IDLE_TIMEOUT": "0.2"}
    )
    assert response.status_code == 200
    assert text_of(data_frames(response)) == "Hello there"
    assert (attempts(response), waits, len(upstream.seen)) == (2, [0.25], 2)


def test_malformed_sse_after_content_is_a_terminal_error():
    events = [aw.event(e) for e in [aw.message_start(), *aw.text_block(0, "Hi")[:2]]]
    broken = sse_fault([*events, b"event: content_block_delta\ndata: {not json\n\n"])
    response, waits, upstream = run_anthropic([broken, sse_fault([GOOD])])
    assert response.status_code == 200
    frames = data_frames(response)
    assert text_of(frames) == "Hi"
    assert "error" in frames[-1]
    assert (attempts(response), waits, len(upstream.seen)) == (1, [], 1)


def test_an_openai_stream_is_passed_on_once_it_has_begun():
    response, waits, upstream = run([sse_fault(openai_chunks(4))], stream=True)
    assert response.status_code == 200
    assert response.content == b"".join(openai_chunks(4))
    assert (attempts(response), waits, len(upstream.seen)) == (1, [], 1)


# -- fallback chains ---------------------------------------------------------------------------

CHAIN = """
[aliases.smart]
targets = ["openai/gpt-4.1-mini", "anthropic/claude-sonnet-4-5"]
retries = 1
"""

ANTHROPIC_ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5",
    "content": [{"type": "text", "text": "from claude"}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 3, "output_tokens": 2},
}


def test_a_persistent_503_falls_back_to_another_provider():
    waits = Waits()
    with (
        FaultUpstream([json_fault(503, {"error": {"message": "down"}})]) as down,
        FaultUpstream([json_fault(200, ANTHROPIC_ANSWER)]) as claude,
    ):
        env = {**openai_env(down.url), **anthropic_env(claude.url), "EDGERELAY_CONFIG": CHAIN}
        server = gateway(env, waits)
        try:
            response = chat(server.url, "smart", max_tokens=50, stop="END")
        finally:
            server.__exit__(None, None, None)
        assert down.wait_all_closed() and claude.wait_all_closed()
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "claude-sonnet-4-5"
    assert body["choices"][0]["message"]["content"] == "from claude"
    assert attempts(response) == 3
    assert response.headers["x-edgerelay-target"] == "anthropic/claude-sonnet-4-5"
    assert waits.asked == [0.25]  # one retry on openai, none before moving on
    sent = json.loads(claude.seen[0].body)  # the same request, translated for Anthropic
    assert claude.seen[0].path == "/v1/messages"
    assert (sent["model"], sent["max_tokens"], sent["stop_sequences"]) == (
        "claude-sonnet-4-5",
        50,
        ["END"],
    )
    assert len(down.seen) == 2


def test_a_target_that_refuses_a_field_is_skipped():
    chain = '[aliases.smart]\ntargets = ["anthropic/claude-sonnet-4-5", "openai/gpt-4.1-mini"]'
    waits = Waits()
    with FaultUpstream([json_fault(200, ANSWER)]) as oai:
        env = {**openai_env(oai.url), **anthropic_env(refused_url()), "EDGERELAY_CONFIG": chain}
        server = gateway(env, waits)
        try:
            schema = {"type": "json_schema", "json_schema": {"name": "x", "schema": {}}}
            response = chat(server.url, "smart", response_format=schema)
        finally:
            server.__exit__(None, None, None)
        assert oai.wait_all_closed()
    assert response.status_code == 200
    assert (attempts(response), response.headers["x-edgerelay-target"]) == (
        1,
        "openai/gpt-4.1-mini",
    )


def test_cors_exposes_the_attempt_headers():
    response, _, _ = run([json_fault(200, ANSWER)])
    assert attempts(response) == 1
    waits = Waits()
    with FaultUpstream([json_fault(200, ANSWER)]) as upstream:
        server = gateway(openai_env(upstream.url), waits)
        try:
            payload = {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Hi"}]}
            response = httpx.post(
                server.url + "/v1/chat/completions",
                json=payload,
                headers={"origin": "https://app.example"},
                timeout=WAIT,
            )
        finally:
            server.__exit__(None, None, None)
    exposed = response.headers["access-control-expose-headers"]
    assert "x-edgerelay-attempts" in exposed and "x-edgerelay-target" in exposed


# -- the client leaves while the gateway waits ---------------------------------------------------


def test_a_client_that_leaves_during_a_wait_gets_no_further_attempt():
    sleeping, cancelled = threading.Event(), threading.Event()

    async def sleep(seconds: float) -> None:
        sleeping.set()
        try:
            await asyncio.sleep(WAIT)  # the client leaves long before this ends
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with FaultUpstream([json_fault(503, {"error": {"message": "down"}})]) as upstream:
        server = GatewayServer(openai_env(upstream.url), sleep=sleep, random=lambda: 0.5)
        server.__enter__()
        try:
            body = json.dumps(
                {"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "Hi"}]}
            ).encode()
            with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as client:
                client.sendall(
                    b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\n"
                    b"content-type: application/json\r\n"
                    + f"content-length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                assert sleeping.wait(WAIT)
            assert cancelled.wait(WAIT), "the wait was not cancelled when the client left"
        finally:
            server.__exit__(None, None, None)
        assert upstream.wait_all_closed()
        assert len(upstream.seen) == 1


def test_the_openai_sdk_streams_a_fallback_answer_from_another_provider():
    import openai

    chain = '[aliases.smart]\ntargets = ["openai/gpt-4.1-mini", "anthropic/claude-sonnet-4-5"]'
    waits = Waits()
    down = json_fault(503, {"error": {"message": "down", "type": "server_error"}})
    with FaultUpstream([down]) as oai, FaultUpstream([sse_fault([GOOD])]) as claude:
        env = {**openai_env(oai.url), **anthropic_env(claude.url), "EDGERELAY_CONFIG": chain}
        server = gateway(env, waits)
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="smart", messages=[{"role": "user", "content": "Hi"}], stream=True
            )
            text = "".join(
                chunk.choices[0].delta.content or "" for chunk in raw.parse() if chunk.choices
            )
        finally:
            server.__exit__(None, None, None)
        assert oai.wait_all_closed() and claude.wait_all_closed()
    assert text == "Hello there"
    assert raw.headers["x-edgerelay-target"] == "anthropic/claude-sonnet-4-5"
    assert raw.headers["x-edgerelay-attempts"] == "4"
    assert waits.asked == [0.25, 0.5]


@pytest.mark.parametrize("stream", [False, True])
def test_the_openai_sdk_gets_a_responses_answer_from_the_fallback_target(stream):
    # OpenAI's own /responses is down: the next target (Anthropic) answers through the chat
    # translation, converted back to a Response.
    import openai

    waits = Waits()
    down = json_fault(503, {"error": {"message": "down", "type": "server_error"}})
    claude = sse_fault([GOOD]) if stream else json_fault(200, ANTHROPIC_ANSWER)
    with FaultUpstream([down]) as oai, FaultUpstream([claude]) as anthropic:
        env = {**openai_env(oai.url), **anthropic_env(anthropic.url), "EDGERELAY_CONFIG": CHAIN}
        server = gateway(env, waits, "httpx")
        try:
            client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)
            raw = client.responses.with_raw_response.create(
                model="smart", input="Hi", stream=stream
            )
            if stream:
                events = list(raw.parse())
                assert events[-1].type == "response.completed"
                text = events[-1].response.output_text
            else:
                text = raw.parse().output_text
        finally:
            server.__exit__(None, None, None)
        assert oai.wait_all_closed() and anthropic.wait_all_closed()
    assert text == ("Hello there" if stream else "from claude")
    assert raw.headers["x-edgerelay-target"] == "anthropic/claude-sonnet-4-5"
    assert raw.headers["x-edgerelay-attempts"] == "3"
    assert [seen.path for seen in oai.seen] == ["/v1/responses", "/v1/responses"]
    assert [seen.path for seen in anthropic.seen] == ["/v1/messages"]
    assert waits.asked == [0.25]


# -- passthrough routes ------------------------------------------------------------------------

MODELS = {"object": "list", "data": [{"id": "gpt-4.1-mini", "object": "model"}]}


def passthrough(script, method, path, env=None, http_client="aiohttp", **kw):
    """One passthrough request through a fresh gateway: (response, waits, upstream)."""
    waits = Waits()
    with FaultUpstream(script) as upstream:
        server = gateway({**openai_env(upstream.url), **(env or {})}, waits, http_client)
        try:
            response = httpx.request(method, server.url + path, timeout=WAIT, **kw)
        finally:
            server.__exit__(None, None, None)
        assert upstream.wait_all_closed(), "an upstream connection was left open"
    return response, waits.asked, upstream


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_passthrough_request_without_a_streamed_body_is_retried(http_client):
    down = json_fault(503, {"error": {"message": "down"}})
    script = [down, json_fault(200, MODELS)]
    response, waits, upstream = passthrough(script, "GET", "/openai/v1/models", None, http_client)
    assert (response.status_code, response.json()) == (200, MODELS)
    assert (waits, len(upstream.seen)) == ([0.25], 2)
    assert attempts(response) == 2
    assert response.headers["x-edgerelay-target"] == "openai"  # a GET names no model


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_passthrough_error_given_up_on_says_how_many_attempts_were_made(http_client):
    down = json_fault(503, {"error": {"message": "down", "type": "server_error"}})
    response, waits, upstream = passthrough(
        [down],
        "GET",
        "/openai/v1/models",
        {"EDGERELAY_RETRIES": "1"},
        http_client,
        headers={"origin": "https://app.example"},
    )
    assert response.status_code == 503
    assert response.json() == {"error": {"message": "down", "type": "server_error"}}  # as sent
    assert (attempts(response), response.headers["x-edgerelay-target"]) == (2, "openai")
    exposed = response.headers["access-control-expose-headers"]
    assert "x-edgerelay-attempts" in exposed and "x-edgerelay-target" in exposed
    assert (waits, len(upstream.seen)) == ([0.25], 2)


def test_a_passthrough_upstream_that_never_answers_is_counted_on_the_502():
    waits = Waits()
    server = gateway(openai_env(refused_url()), waits)
    try:
        response = httpx.get(server.url + "/openai/v1/models", timeout=WAIT)
    finally:
        server.__exit__(None, None, None)
    assert response.status_code == 502
    assert (attempts(response), response.headers["x-edgerelay-target"]) == (3, "openai")
    assert waits.asked == [0.25, 0.5]


def test_a_streamed_passthrough_upload_is_not_retried():
    # The local server passes a passthrough POST's body on as it arrives: it cannot resend it.
    down = json_fault(503, {"error": {"message": "down", "type": "server_error"}})
    body = json.dumps({"model": "gpt-4.1-mini", "messages": [{"role": "user", "content": "x"}]})
    response, waits, upstream = passthrough(
        [down, json_fault(200, ANSWER)], "POST", "/openai/v1/chat/completions", content=body
    )
    assert response.status_code == 503
    assert response.json() == {"error": {"message": "down", "type": "server_error"}}  # as sent
    assert (waits, len(upstream.seen)) == ([], 1)
    assert upstream.seen[0].body == body.encode()
    # Streamed on as it came, the body was never parsed: the target is the provider alone.
    assert (attempts(response), response.headers["x-edgerelay-target"]) == (1, "openai")


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_passthrough_stream_that_stalls_ends_with_an_idle_timeout_error(http_client):
    stall = sse_fault(openai_chunks(3)[:2], then="stall")
    body = json.dumps({"model": "gpt-4.1-mini", "stream": True, "messages": []})
    response, waits, upstream = passthrough(
        [stall],
        "POST",
        "/openai/v1/chat/completions",
        {"EDGERELAY_IDLE_TIMEOUT": "0.3"},
        http_client,
        content=body,
    )
    assert response.status_code == 200
    frames = data_frames(response)
    assert frames[:2] == [json.loads(c[6:]) for c in openai_chunks(3)[:2]]
    assert "error" in frames[-1] and "[DONE]" not in frames
    assert (waits, len(upstream.seen)) == ([], 1)


# -- the total timeout bounds the body too ---------------------------------------------------


class Offset:
    """The gateway's clock: NOW, moved on by the test."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __call__(self) -> float:
        return NOW + self.seconds


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_passthrough_stream_past_the_total_timeout_ends_with_the_terminal_error(http_client):
    # Lock-step: the client reads two events, the clock passes the total timeout, then the
    # upstream sends the third; the gateway ends the stream instead of relaying it.
    gate = threading.Event()
    chunks = openai_chunks(4)
    stall = sse_fault(chunks, after=2, then="rest", gate=gate)
    clock = Offset()
    body = json.dumps({"model": "gpt-4.1-mini", "stream": True, "messages": []})
    env = openai_env("", EDGERELAY_TOTAL_TIMEOUT="60")
    with FaultUpstream([stall]) as upstream:
        env["OPENAI_BASE_URL"] = upstream.url + "/v1"
        server = GatewayServer(env, http_client, clock=clock, sleep=Waits()).__enter__()
        try:
            url = server.url + "/openai/v1/chat/completions"
            with httpx.stream("POST", url, content=body, timeout=WAIT) as response:
                lines = response.iter_lines()
                seen = [line for _, line in zip(range(4), lines, strict=False)]
                clock.seconds = 61.0
                gate.set()
                rest = list(lines)
        finally:
            server.__exit__(None, None, None)
        assert upstream.wait_all_closed(), "an upstream connection was left open"
    assert response.status_code == 200
    data = [json.loads(line[6:]) for line in [*seen, *rest] if line.startswith("data: {")]
    assert data[:2] == [json.loads(c[6:]) for c in chunks[:2]]
    assert "total timeout" in data[-1]["error"]["message"]
    assert len(data) == 3 and "data: [DONE]" not in rest


def test_httpx_bounds_a_stalled_body_by_the_total_timeout():
    # httpx has no total timeout of its own: the transport bounds each read of the body by
    # what is left of it (here the idle timeout is far longer).
    stall = sse_fault(openai_chunks(3)[:2], then="stall")
    body = json.dumps({"model": "gpt-4.1-mini", "stream": True, "messages": []})
    response, waits, upstream = passthrough(
        [stall],
        "POST",
        "/openai/v1/chat/completions",
        {"EDGERELAY_TOTAL_TIMEOUT": "0.5", "EDGERELAY_IDLE_TIMEOUT": "600"},
        "httpx",
        content=body,
    )
    assert response.status_code == 200
    frames = data_frames(response)
    assert frames[:2] == [json.loads(c[6:]) for c in openai_chunks(3)[:2]]
    assert "total timeout" in frames[-1]["error"]["message"]
    assert (waits, len(upstream.seen)) == ([], 1)
