"""`edgerelay serve`'s connection guards on the real server: a client that never finishes its
headers (slowloris) is cut at the header deadline however it dribbles, connections beyond the
cap are answered 503 at once, and the server keeps answering everyone else."""

from __future__ import annotations

import socket

import httpx

from edgerelay.server.cli import connection_limits, main
from tests.support.loopback import WAIT

PARTIAL = b"GET /healthz HTTP/1.1\r\nhost: x\r\n"  # no blank line: the headers never end


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    sock.sendall(PARTIAL)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (WAIT bounds a hang)."""
    received = b""
    for _ in range(1000):
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        received += data
    return received


def test_slow_headers_are_cut_at_the_deadline_and_extra_connections_get_503(gateway_for):
    gateway = gateway_for({}, **connection_limits(header_timeout=0.3, limit_concurrency=6))
    slow = [connect(gateway.port) for _ in range(6)]
    try:
        # A seventh connection, past the cap, is answered at once in OpenAI's error shape.
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as extra:
            answer = read_until_closed(extra)
        assert answer.startswith(b"HTTP/1.1 503 ")
        assert b'"code":"too_many_connections"' in answer

        # One of them keeps sending a header byte at a time: it is cut all the same.
        dribbler = slow[0]
        dribbler.settimeout(0.02)
        closed = False
        for _ in range(500):  # bounded: at most ~10 s of dribbling
            try:
                dribbler.sendall(b"x")
                closed = dribbler.recv(1) == b""
            except TimeoutError:
                continue
            except OSError:  # reset or broken pipe: the server closed it
                closed = True
            if closed:
                break
        assert closed
        for sock in slow[1:]:
            sock.settimeout(WAIT)
            assert read_until_closed(sock) == b""  # closed without an answer

        response = httpx.get(gateway.url + "/healthz", timeout=WAIT)
        assert response.status_code == 200  # the service kept answering
    finally:
        for sock in slow:
            sock.close()


def test_a_kept_alive_connection_gets_a_new_deadline_for_each_request(gateway_for):
    gateway = gateway_for({}, **connection_limits(header_timeout=0.3, limit_concurrency=50))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as sock:
        sock.sendall(PARTIAL + b"\r\n")
        first = b""
        while b'{"status":"ok"}' not in first:
            data = sock.recv(65536)
            assert data, "the server closed a healthy keep-alive connection"
            first += data
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(PARTIAL)  # a second request that never finishes its headers
        assert read_until_closed(sock) == b""


def test_serve_options_are_checked():
    import pytest

    with pytest.raises(SystemExit):
        main(["serve", "--header-timeout", "0"])


def test_a_websocket_upgrade_is_answered_as_plain_http_in_the_route_shape(gateway_for):
    # The gateway serves no WebSocket route: the upgrade is not taken (it was a bare 500 from
    # uvicorn's WebSocket protocol, the app having no handshake to give) and the request is
    # answered as any other, here 404 in OpenAI's shape.
    gateway = gateway_for({}, **connection_limits(header_timeout=5, limit_concurrency=10))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=WAIT) as sock:
        sock.sendall(
            b"GET /v1/realtime HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\n"
            b"upgrade: websocket\r\nsec-websocket-version: 13\r\n"
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
        )
        head, _, body = read_until_closed(sock).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404 ")
    assert b'"error"' in body
