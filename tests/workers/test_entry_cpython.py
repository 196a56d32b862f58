"""Fast CPython checks of the Cloudflare Worker's own logic (workers/cloudflare/*.py) with
stand-in ``js``, ``pyodide`` and ``workers`` modules (fake_platform.py), injected only by the
``worker`` fixture (conftest.py).

What only the real platform can show (Node's streams, the SDK's conversions, lock-step
streaming) is tested under Pyodide: tests/pyodide/test_worker.py.
"""

from __future__ import annotations

import asyncio
import json
import types
from pathlib import Path

import pytest

from edgerelay.core import FetchError, FetchRequest, Response
from tests.workers import fake_platform as fake

SOURCE = Path(__file__).resolve().parents[2] / "workers" / "cloudflare"


def run(coro):
    return asyncio.run(coro)


def chat(model="mock/echo", **extra) -> bytes:
    body = {"model": model, "messages": [{"role": "user", "content": "hi there"}], **extra}
    return json.dumps(body).encode()


def js_request(path="/v1/chat/completions", body=b"", chunks=None, **kw):
    stream = fake.ReadableStream(chunks if chunks is not None else [body] if body else [])
    return fake.Request("https://edgerelay.example.workers.dev" + path, body=stream, **kw)


# --- settings --------------------------------------------------------------------------


def test_env_is_read_as_a_mapping_of_strings(worker):
    env = types.SimpleNamespace(OPENAI_API_KEY="sk", KV=object(), COUNT=3)
    mapping = worker.worker_io.WorkerEnv(env)
    assert mapping.get("OPENAI_API_KEY") == "sk"
    assert mapping.get("KV") is None  # a binding is not a setting
    assert mapping.get("MISSING") is None
    assert list(mapping) == ["OPENAI_API_KEY"]


def test_config_is_kept_per_env_and_errors_are_not(worker):
    config_for = worker.entry.config_for
    good = types.SimpleNamespace()
    assert config_for(good) is config_for(good)
    other = types.SimpleNamespace(EDGERELAY_MAX_BODY_BYTES="5")
    assert config_for(other).max_body_bytes == 5
    bad = types.SimpleNamespace(OPENAI_BASE_URL="ftp://x")
    for _ in range(2):  # not cached: each request reads the env again
        with pytest.raises(worker.entry.ConfigError):
            config_for(bad)
    bad.OPENAI_BASE_URL = "http://fixed.invalid/v1"
    assert config_for(bad).providers["openai"].base_url == "http://fixed.invalid/v1"


def test_config_error_answers_503_naming_only_the_setting(worker, capsys):
    env = types.SimpleNamespace(EDGERELAY_UPSTREAM_TIMEOUT="soon")
    response = run(worker.entry.Default(fake.Context(), env).fetch(js_request(body=chat())))
    assert response.status == 503
    error = json.loads(response.body)["error"]
    assert "EDGERELAY_UPSTREAM_TIMEOUT: must be a number of seconds" in error["message"]
    logged = capsys.readouterr().out
    assert "EDGERELAY_UPSTREAM_TIMEOUT" in logged  # `wrangler tail` shows which setting
    assert "soon" not in error["message"] and "soon" not in logged  # never the value


# --- request ---------------------------------------------------------------------------


def test_request_keeps_the_raw_path_query_headers_and_body(worker):
    request = js_request(
        "/v1/a%20b?x=1&y=%20",
        chunks=[b"ab", b"cd"],
        headers=[("content-type", "application/json"), ("cf-connecting-ip", "203.0.113.9")],
    )
    core_request = run(worker.worker_io.to_core_request(request, 100))
    assert (core_request.method, core_request.path) == ("POST", "/v1/a%20b")
    assert core_request.query == "x=1&y=%20"
    assert core_request.body == b"abcd"
    assert core_request.headers["content-type"] == "application/json"
    assert core_request.client_ip == "203.0.113.9"


def test_request_without_body(worker):
    request = fake.Request("https://w.example/healthz", method="GET", body=worker.jsnull)
    core_request = run(worker.worker_io.to_core_request(request, 100))
    assert (core_request.path, core_request.body) == ("/healthz", b"")


def test_declared_length_over_the_limit_is_413_before_reading(worker):
    request = js_request(body=b"x" * 50, headers=[("content-length", "50")])
    response = run(worker.worker_io.to_core_request(request, 10))
    assert isinstance(response, Response) and response.status == 413
    assert request.body.chunks  # nothing read


def test_streamed_body_over_the_limit_is_413_and_the_upload_cancelled(worker):
    request = js_request(chunks=[b"x" * 8, b"x" * 8, b"x" * 8])
    response = run(worker.worker_io.to_core_request(request, 10))
    assert response.status == 413
    assert request.body.cancelled


def test_broken_upload_is_400(worker):
    request = js_request(chunks=[b"{"])
    request.body.error = fake.JsException()
    assert run(worker.worker_io.to_core_request(request, 100)).status == 400


# --- response --------------------------------------------------------------------------


def test_bytes_response(worker):
    core = Response(200, [("content-type", "application/json"), ("vary", "a"), ("vary", "b")])
    core.body = b"{}"
    response = worker.worker_io.to_worker_response(core, fake.Context())
    assert (response.status, response.body) == (200, b"{}")
    assert response.headers == [("content-type", "application/json"), ("vary", "a"), ("vary", "b")]


def test_a_bytes_response_with_work_after_it_is_closed_under_wait_until(worker):
    # Limits settle their counters once the answer is out (Response.on_close): the Worker
    # sends a body at once and keeps the isolate running for that work.
    done = []

    async def settle():
        done.append("settled")

    async def go():
        core = Response(200, [("content-type", "application/json")], b"{}")
        core.on_close = (settle,)
        ctx = fake.Context()
        response = worker.worker_io.to_worker_response(core, ctx)
        assert response.body == b"{}"
        (proxy,) = ctx.waiting
        await proxy.obj

    run(go())
    assert done == ["settled"]


def test_null_body_status_gets_no_body(worker):
    response = worker.worker_io.to_worker_response(Response(204, [], b""), fake.Context())
    assert response.body is None


def test_passthrough_hands_on_the_upstream_stream_itself(worker):
    native = object()
    upstream = types.SimpleNamespace(native_body=native)

    async def never():
        raise AssertionError("no Python may read a passthrough body")
        yield b""

    core = Response(200, [], stream=never(), upstream=upstream)
    ctx = fake.Context()
    response = worker.worker_io.to_worker_response(core, ctx)
    assert response.body is native
    assert ctx.waiting == []  # no pump


class Upstream:
    def __init__(self) -> None:
        self.closed = False

    async def aclose(self) -> None:
        self.closed = True


def stream_response(chunks, *, hang=False, error=None):
    upstream = Upstream()

    async def produce():  # as core's translated stream: its end closes the upstream
        try:
            for chunk in chunks:
                yield chunk
            if hang:
                await asyncio.Event().wait()
            if error is not None:
                raise error
        finally:
            await upstream.aclose()

    return Response(200, [("content-type", "text/event-stream")], stream=produce()), upstream


async def pumped(worker, core, upstream, *, fail_after=None, cancel=False):
    """Run the pump path; returns (writer, the proxy handed to waitUntil)."""
    ctx = fake.Context()
    response = worker.worker_io.to_worker_response(core, ctx)
    stream = fake.TransformStream.last
    assert response.body is stream.readable
    stream.writer.fail_after = fail_after
    (proxy,) = ctx.waiting
    if cancel:
        await asyncio.sleep(0.01)
        stream.writer.closed.reject()  # the client cancelled the readable side
    await proxy.obj
    await asyncio.sleep(0)  # done callbacks
    return stream.writer, proxy


def test_pump_writes_each_chunk_then_closes(worker):
    core, upstream = stream_response([b"a", b"", b"b", b"c"])
    writer, proxy = run(pumped(worker, core, upstream))
    assert writer.written == [b"a", b"b", b"c"]
    assert writer.is_closed and writer.aborted is None
    assert proxy.destroyed  # the waitUntil proxy is released once the pump is done
    assert upstream.closed


def test_pump_stops_and_aborts_upstream_when_the_client_leaves(worker):
    core, upstream = stream_response([b"a", b"b", b"c"])
    writer, _ = run(pumped(worker, core, upstream, fail_after=1))
    assert writer.written == [b"a"]
    assert not writer.is_closed
    assert upstream.closed


def test_cancel_while_waiting_for_the_upstream_aborts_it(worker):
    core, upstream = stream_response([b"a"], hang=True)
    writer, _ = run(pumped(worker, core, upstream, cancel=True))
    assert writer.written == [b"a"]
    assert upstream.closed


def test_a_bug_mid_stream_breaks_the_stream_visibly(worker):
    core, upstream = stream_response([b"a"], error=RuntimeError("bug"))
    writer, _ = run(pumped(worker, core, upstream))
    assert writer.aborted is not None and not writer.is_closed
    assert upstream.closed


# --- js.fetch transport ----------------------------------------------------------------


def test_fetch_sends_core_request_and_reads_chunks(worker):
    seen = {}

    async def fetch(url, init):
        seen.update(url=url, init=init)
        body = fake.ReadableStream([b"one", b"two"])
        return fake.FakeJsResponse(201, [("x-request-id", "r1")], body)

    worker.js.fetch = fetch
    request = FetchRequest("POST", "http://up.invalid/v1", {"a": "b"}, b"{}", timeout=5)

    async def go():
        response = await worker.js_fetch.JsFetch()(request)
        return response, [chunk async for chunk in response.aiter_bytes()]

    response, chunks = run(go())
    assert (response.status, response.headers) == (201, {"x-request-id": "r1"})
    assert chunks == [b"one", b"two"]
    assert seen["init"]["method"] == "POST" and seen["init"]["body"] == b"{}"
    assert seen["init"]["redirect"] == "manual"
    assert worker.js.timers == {}  # the headers timeout was cleared


def test_fetch_timeout_is_a_timeout_error(worker):
    async def fetch(url, init):
        ((callback, ms),) = worker.js.timers.values()
        assert ms == 250
        callback()  # the timer fires: the controller aborts the request
        raise fake.JsException("AbortError", "This operation was aborted")

    worker.js.fetch = fetch
    with pytest.raises(FetchError) as caught:
        run(worker.js_fetch.JsFetch()(FetchRequest("GET", "http://x.invalid", timeout=0.25)))
    assert caught.value.timeout
    assert worker.js.controllers[0].aborted


def test_fetch_network_error_names_no_url(worker):
    async def fetch(url, init):
        raise fake.JsException("TypeError", "fetch failed")

    worker.js.fetch = fetch
    with pytest.raises(FetchError) as caught:
        run(worker.js_fetch.JsFetch()(FetchRequest("GET", "http://secret.invalid/x")))
    assert not caught.value.timeout
    assert "secret" not in str(caught.value)


def test_fetch_refused_when_the_client_already_left(worker):
    signal = types.SimpleNamespace(aborted=True)
    with pytest.raises(FetchError):
        run(worker.js_fetch.JsFetch(signal)(FetchRequest("GET", "http://x.invalid")))


def test_broken_body_is_a_fetch_error_and_aclose_aborts(worker):
    async def fetch(url, init):
        return fake.FakeJsResponse(200, [], fake.ReadableStream([b"a"], fake.JsException()))

    worker.js.fetch = fetch

    async def go():
        response = await worker.js_fetch.JsFetch()(FetchRequest("GET", "http://x.invalid"))
        got = []
        with pytest.raises(FetchError):
            async for chunk in response.aiter_bytes():
                got.append(chunk)
        await response.aclose()
        return got

    assert run(go()) == [b"a"]
    assert worker.js.controllers[0].aborted


def test_null_body_reads_empty(worker):
    async def fetch(url, init):
        return fake.FakeJsResponse(204, [], worker.jsnull)

    worker.js.fetch = fetch

    async def go():
        response = await worker.js_fetch.JsFetch()(FetchRequest("GET", "http://x.invalid"))
        return response.native_body, await response.read()

    assert run(go()) == (None, b"")


# --- the entrypoint end to end -----------------------------------------------------------

# The Worker refuses anonymous model calls by default; these run as an operator who allowed them.
ANONYMOUS_ENV = types.SimpleNamespace(EDGERELAY_ALLOW_ANONYMOUS="true")


def test_mock_echo_through_the_entrypoint(worker):
    async def go():
        return await worker.entry.Default(fake.Context(), ANONYMOUS_ENV).fetch(
            js_request(body=chat())
        )

    response = run(go())
    assert response.status == 200
    assert json.loads(response.body)["choices"][0]["message"]["content"] == "hi there"


def test_streamed_mock_echo_through_the_entrypoint(worker):
    async def go():
        ctx = fake.Context()
        response = await worker.entry.Default(ctx, ANONYMOUS_ENV).fetch(
            js_request(body=chat(stream=True))
        )
        await ctx.waiting[0].obj
        return response

    response = run(go())
    written = b"".join(fake.TransformStream.last.writer.written)
    assert response.status == 200
    assert written.endswith(b"data: [DONE]\n\n")


def test_limits_without_the_durable_object_binding_are_a_503_in_the_routes_shape(worker, capsys):
    env = types.SimpleNamespace(
        EDGERELAY_ALLOW_ANONYMOUS="true",
        ANTHROPIC_API_KEY="sk-ant-owner-key-canary",
        EDGERELAY_CONFIG='[policies.anonymous]\npassthrough = ["anthropic"]\n'
        "requests_per_minute = 5\n",
    )
    claude = {"model": "claude-sonnet-4-6", "max_tokens": 10, "messages": []}
    headers = [("x-edgerelay-request-id", "client-chosen-id-1")]

    async def go(path, body):
        request = js_request(path, body=json.dumps(body).encode(), headers=headers)
        return await worker.entry.Default(fake.Context(), env).fetch(request)

    anthropic = run(go("/anthropic/v1/messages", claude))
    assert anthropic.status == 503
    body = json.loads(anthropic.body)
    assert body["type"] == "error" and "EDGERELAY_LIMITS" in body["error"]["message"]
    chat_answer = run(go("/v1/chat/completions", json.loads(chat())))
    assert chat_answer.status == 503
    assert "EDGERELAY_LIMITS" in json.loads(chat_answer.body)["error"]["message"]
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x.startswith("{")]
    assert [(x["route"], x["status"], x["limit"]) for x in lines] == [
        ("anthropic", 503, "unavailable"),
        ("/v1/chat/completions", 503, "unavailable"),
    ]
    assert {x["request_id"] for x in lines} == {"client-chosen-id-1"}
    assert all("canary" not in json.dumps(x) for x in lines)


def test_the_upload_never_ships_a_platform_module_name():
    names = {p.stem for p in SOURCE.glob("*.py")}
    assert not names & {"js", "workers", "pyodide", "httpx", "asgi"}
    assert not (SOURCE.parent / "__init__.py").exists()  # `workers` stays the SDK's
