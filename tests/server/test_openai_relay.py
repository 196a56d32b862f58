"""End to end: the official openai SDK and raw HTTP clients against the real server on uvicorn,
with a loopback fake OpenAI upstream."""

import json

import httpx
import openai
import pytest

from tests.support import shared_fixtures
from tests.support.loopback import WAIT, Reply, sse_frames
from tests.support.openai_wire import openai_chunks
from tests.support.splits import random_splits

SSE = {"content-type": "text/event-stream; charset=utf-8"}


def sse_stream(n: int = 6) -> bytes:
    return b"".join(openai_chunks(n))


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_openai_sdk_streams_byte_identically_through_the_gateway(
    upstream, gateway_for, http_client
):
    stream = sse_stream()
    upstream.handler = lambda seen: Reply(200, SSE, random_splits(stream, 7))
    gateway = gateway_for(
        {"OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-up"}, http_client
    )
    body = {
        "model": "openai/gpt-4.1-mini",
        "stream": True,
        "messages": [{"role": "user", "content": "hi"}],
    }
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as raw:
        assert raw.status_code == 200
        assert raw.headers["content-type"].startswith("text/event-stream")
        received = b"".join(raw.iter_raw())
    assert received == stream

    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused-by-gateway")
    chunks = list(
        client.chat.completions.create(
            model="openai/gpt-4.1-mini", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == " w1 w2 w3 w4 w5"
    seen = upstream.seen[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-up"  # the gateway's key, not the client's
    assert json.loads(seen.body)["model"] == "gpt-4.1-mini"


def test_openai_sdk_non_stream_through_the_gateway(upstream, gateway_for):
    answer = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-4.1-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "YES"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    raw = json.dumps(answer, indent=2).encode() + b"\n"
    upstream.handler = lambda seen: Reply(200, {"content-type": "application/json"}, [raw])
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"})
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x")
    completion = client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "yes?"}]
    )
    assert completion.choices[0].message.content == "YES"
    assert completion.usage.total_tokens == 4
    assert (
        httpx.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
        ).content
        == raw
    )


def test_lockstep_upstream_proves_chunks_are_relayed_as_they_arrive(upstream, gateway_for):
    # Chunk k+1 leaves the upstream only after the client has read chunk k: a relay that
    # buffers anything deadlocks here and the read times out.
    frames = [f'data: {{"n": {i}}}\n\n'.encode() for i in range(8)] + [b"data: [DONE]\n\n"]
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"})
    body = {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    got = []
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, timeout=WAIT
    ) as response:
        for frame in sse_frames(response):
            got.append(frame + b"\n\n")
            upstream.release()
    assert got == frames


def test_openai_sdk_streams_in_lockstep(upstream, gateway_for):
    frames = sse_stream(5).split(b"\n\n")[:-1]
    upstream.handler = lambda seen: Reply(200, SSE, [f + b"\n\n" for f in frames], lockstep=True)
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"})
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", timeout=WAIT, max_retries=0)
    stream = client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "x"}], stream=True
    )
    contents = []
    for chunk in stream:
        contents.append(chunk.choices[0].delta.content)
        upstream.release()
    assert contents == ["", " w1", " w2", " w3", " w4"]


def test_client_disconnect_cancels_the_upstream_read(upstream, gateway_for):
    frames = [b"data: {}\n\n"] * 50
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"})
    body = {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response:
        next(response.iter_raw())
    # The upstream is parked waiting for a release that never comes; only the gateway closing
    # its upstream connection ends that handler.
    assert upstream.cancelled.wait(WAIT)
    assert not upstream.finished.is_set()


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_upstream_cookies_are_never_kept_or_shown(upstream, gateway_for, http_client):
    headers = {"content-type": "application/json", "set-cookie": "__cf_bm=abc; path=/"}
    headers["openai-organization"] = "user-123"
    upstream.handler = lambda seen: Reply(200, headers, [b"{}"])
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"}, http_client)
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}
    for _ in range(2):
        response = httpx.post(gateway.url + "/v1/chat/completions", json=body)
        assert "set-cookie" not in response.headers
        assert "openai-organization" not in response.headers
    assert all("Cookie" not in seen.headers for seen in upstream.seen)
    assert len(upstream.seen) == 2


def test_proxy_variables_in_the_environment_are_ignored(upstream, gateway_for, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("ALL_PROXY", "http://127.0.0.1:9")
    upstream.handler = lambda seen: Reply(200, {"content-type": "application/json"}, [b"{}"])
    for client in ("aiohttp", "httpx"):
        gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"}, client)
        body = {"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}
        response = httpx.post(gateway.url + "/v1/chat/completions", json=body, trust_env=False)
        assert response.status_code == 200


def test_proxy_variables_are_used_when_configured(upstream, gateway_for, monkeypatch):
    # EDGERELAY_TRUST_ENV=true: the (dead) proxy is used, so the upstream is never reached.
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    upstream.handler = lambda seen: Reply(200, {"content-type": "application/json"}, [b"{}"])
    for client in ("aiohttp", "httpx"):
        env = {"OPENAI_BASE_URL": upstream.url + "/v1", "EDGERELAY_TRUST_ENV": "true"}
        gateway = gateway_for(env, client)
        body = {"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}
        response = httpx.post(gateway.url + "/v1/chat/completions", json=body, trust_env=False)
        assert response.status_code == 502, client
    assert upstream.seen == []


def test_errors_over_http(upstream, gateway_for):
    gateway = gateway_for(
        {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1", "EDGERELAY_MAX_BODY_BYTES": "1000"}
    )
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x", max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model="gpt-x", messages=[{"role": "user", "content": "x"}])
    assert raised.value.status_code == 502
    assert "Could not reach the openai upstream" in raised.value.message
    big = {"model": "mock/echo", "messages": [{"role": "user", "content": "x" * 2000}]}
    assert httpx.post(gateway.url + "/v1/chat/completions", json=big).status_code == 413
    bad = httpx.post(gateway.url + "/v1/chat/completions", content=b"{oops")
    assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(gateway.url + "/nope").status_code == 404


def test_mock_echo_through_the_sdk_needs_no_key(gateway_for):
    gateway = gateway_for({})
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="anything")
    stream = client.chat.completions.create(
        model="mock/echo",
        messages=[{"role": "user", "content": "stream me please"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert (
        "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "stream me please"
    )
    assert chunks[-1].usage.completion_tokens == 3
    assert [m.id for m in client.models.list()] == ["mock/echo"]


@pytest.mark.skipif(not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON)
@pytest.mark.parametrize("name", shared_fixtures.names("openai", "stream-") or ["none"])
def test_recorded_openai_streams_are_relayed_byte_identically(upstream, gateway_for, name):
    stream = shared_fixtures.body(name)
    upstream.handler = lambda seen: Reply(
        200, shared_fixtures.headers(name), random_splits(stream, 3)
    )
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"})
    body = {"model": "gpt-4o-mini", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body) as response:
        assert b"".join(response.iter_raw()) == stream
        assert "set-cookie" not in response.headers
        assert "openai-organization" not in response.headers
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key="x")
    chunks = list(
        client.chat.completions.create(
            stream=True, **{k: v for k, v in body.items() if k != "stream"}
        )
    )
    assert chunks  # the SDK parses every recorded frame


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_an_upstream_that_never_answers_is_a_504_after_the_timeout(gateway_for, http_client):
    import socket

    with socket.socket() as silent:  # accepts the connection, never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        port = silent.getsockname()[1]
        env = {
            "OPENAI_BASE_URL": f"http://127.0.0.1:{port}/v1",
            "EDGERELAY_UPSTREAM_TIMEOUT": "0.3",
        }
        gateway = gateway_for(env, http_client)
        body = {"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}
        response = httpx.post(gateway.url + "/v1/chat/completions", json=body, timeout=WAIT)
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "timeout"


def test_head_healthz_for_health_checkers(gateway_for):
    gateway = gateway_for({})
    response = httpx.head(gateway.url + "/healthz")
    assert response.status_code == 200
    assert response.content == b""
