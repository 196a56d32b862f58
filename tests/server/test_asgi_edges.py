"""Edge cases of the ASGI adapter on the real server (uvicorn): what it does with bytes an
upstream or a client may send that a plain ASCII test would never exercise."""

from __future__ import annotations

import socket
import threading

import httpx
import pytest

from tests.support.loopback import WAIT, Reply

CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


class RawUpstream:
    """Answers each request with exactly ``raw`` (status line, headers, body), then closes:
    for header bytes a real HTTP server library refuses to write."""

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(WAIT)
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> RawUpstream:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() (close() alone does not)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(WAIT)

    def _serve(self) -> None:
        for _ in range(16):  # bounded: a test makes a request or two
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(WAIT)
                head = b""
                while b"\r\n\r\n" not in head:
                    data = conn.recv(65536)
                    if not data:
                        break
                    head += data
                length = 0
                for line in head.split(b"\r\n"):
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = head.partition(b"\r\n\r\n")[2]
                while len(body) < length:
                    data = conn.recv(65536)
                    if not data:
                        break
                    body += data
                conn.sendall(self.raw)


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_upstream_header_outside_latin1_reaches_the_client_as_sent(
    upstream, gateway_for, http_client
):
    # An OpenAI-compatible server may put UTF-8 in an allowlisted header (a file name, an id).
    headers = {"content-type": "application/json", "x-request-id": "req-€-1"}
    upstream.handler = lambda seen: Reply(200, headers, [b'{"ok":1}'])
    gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"}, http_client)

    response = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT)

    assert response.status_code == 200
    assert response.content == b'{"ok":1}'
    assert dict(response.headers.raw)[b"x-request-id"] == "req-€-1".encode()


@pytest.mark.parametrize("http_client", ["aiohttp", "httpx"])
def test_upstream_header_with_a_control_character_is_dropped_not_a_dropped_connection(
    gateway_for, http_client
):
    # Both clients hand such a value over; uvicorn refuses to write it, after the response
    # counts as started, so the client used to get its connection closed with no answer.
    raw = (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-request-id: a\x01b\r\n"
        b"x-ratelimit-remaining-requests: 7\r\ncontent-length: 8\r\nconnection: close\r\n\r\n"
        b'{"ok":1}'
    )
    with RawUpstream(raw) as upstream:
        gateway = gateway_for({"OPENAI_BASE_URL": upstream.url + "/v1"}, http_client)
        response = httpx.post(gateway.url + "/v1/chat/completions", json=CHAT)

    assert response.status_code == 200
    assert response.content == b'{"ok":1}'
    assert "x-request-id" not in response.headers
    assert response.headers["x-ratelimit-remaining-requests"] == "7"


def test_client_header_bytes_beyond_ascii_reach_a_passthrough_upstream_unchanged(
    upstream, gateway_for
):
    upstream.handler = lambda seen: Reply(200, {"content-type": "application/json"}, [b"{}"])
    gateway = gateway_for(
        {"OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-up"}, "httpx"
    )
    request = (
        b"POST /openai/v1/embeddings HTTP/1.1\r\nHost: gateway\r\n"
        b"content-type: application/json\r\nidempotency-key: \xc3\xa9t\xc3\xa9\r\n"
        b"content-length: 2\r\nconnection: close\r\n\r\n{}"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as sock:
        sock.sendall(request)
        answer = b""
        while data := sock.recv(65536):
            answer += data

    assert answer.startswith(b"HTTP/1.1 200 ")
    seen = {name.lower(): value for name, value in upstream.seen[-1].headers.items()}
    assert seen["idempotency-key"] == "été"  # UTF-8 in, UTF-8 out
