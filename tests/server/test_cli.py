"""`edgerelay serve` as a user starts it: a bad setting is named at start, never a traceback."""

import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.support.loopback import WAIT, Reply, free_port


def serve(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "edgerelay.server.cli", "serve", "--port", "9"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_bad_setting_stops_the_server_at_start_naming_it():
    done = serve({"EDGERELAY_MAX_BODY_BYTES": "lots", "OPENAI_API_KEY": "sk-secret-value"})
    assert done.returncode == 2
    assert "EDGERELAY_MAX_BODY_BYTES" in done.stderr
    assert "Traceback" not in done.stderr
    assert "sk-secret-value" not in done.stderr + done.stdout


def test_a_bad_config_file_path_is_named():
    done = serve({"EDGERELAY_CONFIG": "/nonexistent/edgerelay.toml"})
    assert done.returncode == 2
    assert "EDGERELAY_CONFIG" in done.stderr and "Traceback" not in done.stderr


def test_the_banner_says_where_and_which_providers_answer_without_keys():
    from edgerelay.core import load_config
    from edgerelay.server.cli import banner

    text = banner(load_config({"ANTHROPIC_API_KEY": "sk-ant-secret"}), "127.0.0.1", 8787)
    assert "http://127.0.0.1:8787" in text
    assert "mock/echo, anthropic" in text
    assert "sk-ant-secret" not in text
    local = load_config({"OPENAI_BASE_URL": "http://127.0.0.1:11434/v1"})
    assert "mock/echo, openai" in banner(local, "0.0.0.0", 80)  # a local server needs no key


def test_sigterm_with_a_stream_open_stops_the_server_and_the_upstream(upstream):
    # uvicorn waits for open responses without limit unless told otherwise: one idle stream
    # kept `edgerelay serve` from stopping until SIGKILL.
    sse = {"content-type": "text/event-stream"}
    chunks = [b'data: {"n":%d}\n\n' % i for i in range(3)]
    upstream.handler = lambda seen: Reply(200, sse, chunks, lockstep=True)  # never released
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    env = {**clean, "OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-up"}
    argv = ["serve", "--port", str(port), "--graceful-timeout", "0.2"]
    server = subprocess.Popen(
        [sys.executable, "-m", "edgerelay.server.cli", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    body = {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    try:
        for _ in range(1000):  # bounded: until it listens
            assert server.poll() is None, "the server did not start"
            try:
                httpx.get(url + "/healthz", timeout=WAIT)
                break
            except httpx.TransportError:
                time.sleep(0.01)
        with httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=WAIT) as reply:
            stream = reply.iter_raw()
            assert next(stream) == chunks[0]
            server.send_signal(signal.SIGTERM)
            # uvicorn re-raises the signal it handled once it has shut down cleanly.
            assert server.wait(WAIT) == -signal.SIGTERM
            with pytest.raises(httpx.RemoteProtocolError):  # cut visibly, not a clean end
                list(stream)
        assert upstream.cancelled.wait(WAIT)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(WAIT)


def test_the_log_line_is_one_json_line_without_query_headers_or_body():
    import asyncio
    import io
    import json

    from edgerelay.server.asgi import create_app
    from edgerelay.server.request_log import LogSink

    stream = io.StringIO()
    app = create_app({})
    app.log_sink = LogSink("all", stream)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/v1/models",
        "raw_path": b"/v1/models",
        "query_string": b"key=AIza-client-secret",
        "headers": [(b"authorization", b"Bearer sk-client-secret")],
        "client": ("127.0.0.1", 5),
    }
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}])
    sent = []

    async def receive():
        return next(messages, {"type": "http.disconnect"})

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert (entry["method"], entry["route"], entry["status"]) == ("GET", "/v1/models", 200)
    assert entry["duration_ms"] >= 0
    assert "secret" not in line
    assert sent[0]["status"] == 200


def test_an_unknown_http_client_is_named_at_start():
    done = serve({"EDGERELAY_HTTP_CLIENT": "requests"})
    assert done.returncode == 2
    assert "EDGERELAY_HTTP_CLIENT" in done.stderr and "Traceback" not in done.stderr


def test_serving_beyond_loopback_with_no_identity_is_refused_naming_the_settings():
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    done = subprocess.run(
        [sys.executable, "-m", "edgerelay.server.cli", "serve", "--host", "0.0.0.0", "--port", "9"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "EDGERELAY_ALLOW_ANONYMOUS" in done.stderr and "EDGERELAY_JWKS_URL" in done.stderr
    assert "Traceback" not in done.stderr


def test_loopback_serves_anyone_and_says_so_elsewhere_identity_or_explicit_consent():
    from edgerelay.core import load_config
    from edgerelay.server.cli import anonymous_refusal, banner

    bare = load_config({})
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert anonymous_refusal(bare, host) is None
    assert "no client identity configured" in banner(bare, "127.0.0.1", 8787)
    assert anonymous_refusal(bare, "0.0.0.0") is not None
    assert anonymous_refusal(bare, "192.168.1.5") is not None
    allowed = load_config({"EDGERELAY_ALLOW_ANONYMOUS": "true"})
    assert anonymous_refusal(allowed, "0.0.0.0") is None
    keyed = load_config({"EDGERELAY_CLIENT_KEYS": "a-client-key-of-enough-length"})
    assert anonymous_refusal(keyed, "0.0.0.0") is None
    assert "no client identity" not in banner(keyed, "0.0.0.0", 80)
    assert "a-client-key-of-enough-length" not in banner(keyed, "0.0.0.0", 80)


def test_the_log_line_says_when_a_request_was_repaired():
    import asyncio
    import io
    import json

    from edgerelay.server.asgi import create_app
    from edgerelay.server.request_log import LogSink
    from tests.support import anthropic_wire as wire
    from tests.support.fake_fetch import FakeFetch, FakeResponse

    env = {"ANTHROPIC_API_KEY": "sk-ant-owner-key", "ANTHROPIC_BASE_URL": "https://a.test"}

    def answer(request):
        return FakeResponse(200, {}, [wire.text_stream("ok")])

    app = create_app(env, FakeFetch(answer))
    call = {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    # A tool turn sent back without its signed thinking: repaired (thinking off).
    repaired = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
    ]
    plain = [{"role": "user", "content": "hi"}]

    async def ignore(message):
        pass

    for messages, expected in ((repaired, "thinking"), (plain, None)):
        body = {
            "model": "claude-sonnet-4-6",
            "stream": True,
            "reasoning_effort": "low",
            "messages": messages,
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        }
        raw = json.dumps(body).encode()
        scope = {
            "type": "http",
            "method": "POST",
            "path": "/v1/chat/completions",
            "raw_path": b"/v1/chat/completions",
            "query_string": b"",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 5000),
        }
        receive = _receiving(raw)

        stream = io.StringIO()
        app.log_sink = LogSink("all", stream)
        asyncio.run(app(scope, receive, ignore))
        (line,) = stream.getvalue().splitlines()
        entry = json.loads(line)
        assert entry["status"] == 200
        assert entry.get("repaired") == expected
        assert "sk-ant-owner-key" not in line


def _receiving(body: bytes):
    """An ASGI receive: the body in one message, then the client leaving."""
    queue = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    return receive


def test_sigterm_during_streams_logs_one_line_per_cut_stream_and_no_traceback(upstream):
    sse = {"content-type": "text/event-stream"}
    chunks = [b'data: {"n":%d}\n\n' % i for i in range(3)]
    upstream.handler = lambda seen: Reply(200, sse, chunks, lockstep=True)  # never released
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("EDGERELAY_", "OPENAI_"))}
    env = {**clean, "OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-up-secret-1"}
    argv = ["serve", "--port", str(port), "--graceful-timeout", "0.2"]
    server = subprocess.Popen(
        [sys.executable, "-m", "edgerelay.server.cli", *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    body = {"model": "gpt-x", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    try:
        for _ in range(1000):  # bounded: until it listens
            assert server.poll() is None, "the server did not start"
            try:
                httpx.get(url + "/healthz", timeout=WAIT)
                break
            except httpx.TransportError:
                time.sleep(0.01)
        with (
            httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=WAIT) as one,
            httpx.stream("POST", url + "/v1/chat/completions", json=body, timeout=WAIT) as two,
        ):
            received = [one.iter_raw(), two.iter_raw()]  # kept: dropping one closes it
            assert [next(r) for r in received] == [chunks[0]] * 2
            server.send_signal(signal.SIGTERM)
            assert server.wait(WAIT) == -signal.SIGTERM
        log = server.stderr.read()
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(WAIT)
        server.stderr.close()
    assert "Traceback" not in log and "CancelledError" not in log
    cut = [line for line in log.splitlines() if "cut short by the shutdown" in line]
    assert cut == ["edgerelay: POST /v1/chat/completions cut short by the shutdown"] * 2
    assert "sk-up-secret-1" not in log
