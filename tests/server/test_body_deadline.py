"""A request body that stops arriving (a Content-Length larger than what is sent, or a client
that just stalls) is answered 408 in the route's shape after EDGERELAY_BODY_IDLE_TIMEOUT, and a
passthrough upload already on its way aborts the upstream request."""

from __future__ import annotations

import json
import socket

import httpx
import pytest

from tests.support.loopback import WAIT, Reply

JSON = {"content-type": "application/json"}


def answer(sock: socket.socket) -> tuple[int, dict]:
    """Status and JSON body of the one response on ``sock`` (the server then closes it)."""
    received = b""
    for _ in range(1000):  # bounded; WAIT bounds each read
        data = sock.recv(65536)
        if not data:
            break
        received += data
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_a_chat_body_shorter_than_its_length_is_408_in_openais_shape(gateway_for):
    gateway = gateway_for({"EDGERELAY_BODY_IDLE_TIMEOUT": "0.2"})
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as client:
        client.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"model": "mock/echo", '
        )
        status, body = answer(client)  # the gateway closes the connection after it
    assert status == 408
    assert body["error"]["code"] == "request_timeout"
    assert "EDGERELAY_BODY_IDLE_TIMEOUT" in body["error"]["message"]
    assert httpx.get(gateway.url + "/healthz", timeout=WAIT).status_code == 200


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_a_stalled_upload_is_408_in_the_providers_shape_and_aborts_the_upstream(
    upstream, gateway_for, http_client
):
    upstream.handler = lambda seen: Reply(200, JSON, [b"{}"])
    env = {
        "ANTHROPIC_BASE_URL": upstream.url,
        "ANTHROPIC_API_KEY": "sk-ant-up",
        "EDGERELAY_BODY_IDLE_TIMEOUT": "0.2",
    }
    gateway = gateway_for(env, http_client)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as client:
        client.sendall(
            b"POST /anthropic/v1/messages HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"model": "claude-x", '
        )
        assert upstream.uploaded.get(timeout=WAIT)  # the first part is on its way upstream
        status, body = answer(client)
    assert status == 408
    assert body["type"] == "error" and body["error"]["type"] == "timeout_error"  # Anthropic's
    assert upstream.cancelled.wait(WAIT)  # the upstream request was aborted, not completed
    assert upstream.seen == []
