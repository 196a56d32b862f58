"""Passthrough uploads go upstream as they arrive (not read first), framed as the client framed
them, and an upload past EDGERELAY_MAX_BODY_BYTES is refused without reaching the upstream
whole."""

import json
import queue

import httpx
import pytest

from tests.support.loopback import WAIT, Reply

JSON = {"content-type": "application/json"}
ENV = {"ANTHROPIC_API_KEY": "sk-ant-gateway"}


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_an_upload_reaches_the_upstream_before_the_client_has_finished_sending(
    upstream, gateway_for, http_client
):
    upstream.handler = lambda seen: Reply(200, JSON, [b'{"type":"message"}'])
    gateway = gateway_for({**ENV, "ANTHROPIC_BASE_URL": upstream.url}, http_client)
    first, second = b'{"model": "claude-x", "max_tokens": 5, ', b'"messages": []}'

    def body():
        yield first
        # Lock-step: the rest is sent only once the upstream holds the first part. A gateway
        # that read the whole body before calling the upstream never gets here.
        got = b""
        while len(got) < len(first):
            got += upstream.uploaded.get(timeout=WAIT)
        assert got == first
        yield second

    response = httpx.post(
        gateway.url + "/anthropic/v1/messages", content=body(), headers=JSON, timeout=WAIT
    )
    assert response.status_code == 200
    (seen,) = upstream.seen
    assert seen.body == first + second  # unchanged bytes
    assert seen.headers["x-api-key"] == "sk-ant-gateway"


def test_a_declared_length_is_forwarded_as_sent(upstream, gateway_for):
    upstream.handler = lambda seen: Reply(200, JSON, [b"{}"])
    gateway = gateway_for({**ENV, "ANTHROPIC_BASE_URL": upstream.url})
    raw = json.dumps({"model": "claude-x", "max_tokens": 5, "messages": []}).encode()
    response = httpx.post(gateway.url + "/anthropic/v1/messages", content=raw, headers=JSON)
    assert response.status_code == 200
    (seen,) = upstream.seen
    assert seen.body == raw
    assert seen.headers["Content-Length"] == str(len(raw))
    assert "Transfer-Encoding" not in seen.headers


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_an_upload_over_the_limit_is_413_in_the_providers_shape(upstream, gateway_for, http_client):
    upstream.handler = lambda seen: Reply(200, JSON, [b"{}"])
    env = {**ENV, "ANTHROPIC_BASE_URL": upstream.url, "EDGERELAY_MAX_BODY_BYTES": "1000"}
    gateway = gateway_for(env, http_client)

    def chunked():  # no Content-Length: the limit is found on the way
        for _ in range(10):
            yield b" " * 300

    response = httpx.post(gateway.url + "/anthropic/v1/messages", content=chunked(), headers=JSON)
    assert response.status_code == 413
    assert response.json()["error"]["type"] == "request_too_large"  # Anthropic's shape
    assert upstream.seen == []  # the upstream never got a whole request
    declared = httpx.post(gateway.url + "/anthropic/v1/messages", content=b"x" * 2000)
    assert declared.status_code == 413
    assert upstream.uploaded.qsize() <= 4  # refused by its declared length, nothing sent


def test_the_chat_route_still_reads_the_body_first(upstream, gateway_for):
    # /v1/chat/completions parses the body (routing, translation), so it needs it whole.
    upstream.handler = lambda seen: Reply(200, JSON, [b"{}"])
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"})
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "x"}]}
    assert httpx.post(gateway.url + "/v1/chat/completions", json=body).status_code == 200
    try:
        upstream.uploaded.get_nowait()
    except queue.Empty:
        raise AssertionError("the upstream got no body") from None


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_client_that_leaves_mid_upload_aborts_the_upstream_request(
    upstream, gateway_for, http_client
):
    import socket

    upstream.handler = lambda seen: Reply(200, JSON, [b"{}"])
    gateway = gateway_for({**ENV, "ANTHROPIC_BASE_URL": upstream.url}, http_client)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as client:
        client.sendall(
            b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"model": "claude-x", '
        )
        assert upstream.uploaded.get(timeout=WAIT)  # the first part is on its way upstream
    # The client is gone with 80 bytes unsent: the upstream must not get a complete request.
    assert upstream.cancelled.wait(WAIT)
    assert upstream.seen == []
