"""The Cloudflare Worker (build/worker/entry.py) under real Pyodide, called as workerd calls it
(workerd_call.py), with Node's fetch/Request/Response/streams as the `js` globals and the
loopback fake upstream (upstream.mjs) as every provider.

Streaming is asserted without timing: in a lock-step upstream, event k+1 leaves the upstream
only after the test has read event k from the *Worker's* response, so any buffering on the
way (transport, core, pump, passthrough) deadlocks and fails on the test's timeout.
"""

import asyncio
import json

import js
from anthropic_sse import MESSAGE_START, anthropic_event
from async_runner import timeout
from workerd_call import (
    UPSTREAM,
    call_fetch,
    load_entry,
    make_request,
    read_all,
    read_event,
)
from workerd_call import make_env as workerd_env

entry = load_entry()  # import errors fail the module loudly


def make_env(**settings):
    """The Worker refuses anonymous model calls by default; these transport tests run as an
    operator who allowed them explicitly."""
    return workerd_env(EDGERELAY_ALLOW_ANONYMOUS="true", **settings)


TEST = js.EDGERELAY_TEST


def chat(model, content="hello there world", **extra):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": content}], **extra})


def anthropic_steps(words):
    """An Anthropic Messages stream, grouped so that every step yields OpenAI output."""
    start = MESSAGE_START
    block = anthropic_event(
        "content_block_start", index=0, content_block={"type": "text", "text": ""}
    )
    deltas = [
        anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": w})
        for w in words
    ]
    end = (
        anthropic_event("content_block_stop", index=0)
        + anthropic_event(
            "message_delta",
            delta={"stop_reason": "end_turn", "stop_sequence": None},
            usage={"output_tokens": len(words)},
        )
        + anthropic_event("message_stop")
    )
    return [start, block + deltas[0], *deltas[1:], end]


def data_of(event: bytes):
    assert event.startswith(b"data: "), event
    payload = event.removeprefix(b"data: ")
    return payload if payload == b"[DONE]" else json.loads(payload)


class RecordingFetch(entry.JsFetch):
    """The real transport, remembering its responses (to compare the client's body with)."""

    seen = []

    async def __call__(self, request):
        response = await super().__call__(request)
        RecordingFetch.seen.append(response)
        return response


async def settled_ok(ctx):
    """Every ctx.waitUntil promise (the pump) has ended without error."""
    outcomes = await ctx.settled()
    bad = [o.reason for o in outcomes if o.status != "fulfilled"]
    assert not bad, bad


async def wait_until(predicate, what, limit=5.0):
    """Poll (no timing assertion: only a generous bound) until predicate() holds."""
    for _ in range(int(limit / 0.02)):
        if predicate():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {limit} s: {what}")


@timeout(10)
async def test_health_and_the_real_sdk():
    import workers

    assert issubclass(entry.Default, workers.WorkerEntrypoint)
    resp, _ = await call_fetch(make_env(), make_request("/healthz", method="GET"))
    assert resp.constructor.name == "Response"  # python_to_rpc gave the JS object back
    assert resp.status == 200
    assert json.loads(await resp.text()) == {"status": "ok"}


@timeout(10)
async def test_mock_echo_json():
    resp, _ = await call_fetch(make_env(), make_request(body=chat("mock/echo")))
    assert resp.status == 200
    assert resp.headers.get("content-type") == "application/json"
    body = json.loads(await resp.text())
    assert body["choices"][0]["message"]["content"] == "hello there world"


@timeout(10)
async def test_mock_echo_streamed_through_the_pump():
    env = make_env()
    resp, ctx = await call_fetch(env, make_request(body=chat("mock/echo", stream=True)))
    assert resp.status == 200
    assert resp.headers.get("content-type").startswith("text/event-stream")
    raw = await read_all(resp.body.getReader())
    events = [data_of(e) for e in raw.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    text = "".join(e["choices"][0]["delta"].get("content", "") for e in events[:-1])
    assert text == "hello there world"
    assert ctx.pendingCount == 1  # the pump ran under ctx.waitUntil
    await settled_ok(ctx)


@timeout(20)
async def test_openai_passthrough_lockstep_zero_copy():
    n, sid = 5, "worker-pass"
    env = make_env(
        OPENAI_BASE_URL=f"{UPSTREAM}/ls/{sid}/{n}",
        OPENAI_API_KEY="sk-test",
        EDGERELAY_IDLE_TIMEOUT="off",  # the operator's opt-in to zero copy
    )
    RecordingFetch.seen.clear()
    entry.JsFetch = RecordingFetch
    try:
        resp, ctx = await call_fetch(env, make_request(body=chat("gpt-test", stream=True)))
    finally:
        entry.JsFetch = RecordingFetch.__bases__[0]
    assert resp.status == 200
    # Zero copy: the client's body IS the upstream's ReadableStream; no pump, no Python per chunk.
    (upstream,) = RecordingFetch.seen
    assert resp.body == upstream.native_body
    assert ctx.pendingCount == 0
    reader, buf = resp.body.getReader(), b""
    for k in range(n):
        event, buf = await read_event(reader, buf)
        assert data_of(event) == {"id": sid, "k": k}
        assert TEST.sent(sid) == k + 1  # the upstream holds k+1 until we ack k
        if k < n - 1:
            assert TEST.ack(sid, k) == 204
    assert await read_all(reader, buf) == b""


@timeout(20)
async def test_translated_stream_lockstep():
    words = ["Hello", " streaming", " world"]
    steps = anthropic_steps(words)
    # The opening message_start is held until the first content (so a failure before it can
    # be retried): it goes in one step with the first delta.
    steps = [steps[0] + steps[1], *steps[2:]]
    sid = "worker-translated"
    TEST.script(sid, steps)
    env = make_env(ANTHROPIC_BASE_URL=f"{UPSTREAM}/script/{sid}", ANTHROPIC_API_KEY="sk-ant")
    body = chat("anthropic/claude-test", stream=True)
    resp, ctx = await call_fetch(env, make_request(body=body))
    assert resp.status == 200
    reader, buf, events = resp.body.getReader(), b"", []
    for k in range(len(steps)):
        event, buf = await read_event(reader, buf)  # at least one output event per step
        events.append(data_of(event))
        assert TEST.sent(sid) == k + 1, (k, TEST.sent(sid))
        if k < len(steps) - 1:
            while b"\n\n" in buf:  # the rest of this step's output, if it came in one chunk
                event, buf = await read_event(reader, buf)
                events.append(data_of(event))
            assert TEST.ack(sid, k) == 204
    buf = await read_all(reader, buf)
    events += [data_of(e) for e in buf.split(b"\n\n") if e]
    assert events[-1] == b"[DONE]"
    chunks = events[:-1]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert text == "".join(words)
    assert [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]][-1] == "stop"
    await settled_ok(ctx)


@timeout(20)
async def test_client_cancel_aborts_the_upstream_translated():
    sid = "worker-cancel-translated"
    steps = anthropic_steps(["a", "b", "c", "d"])
    TEST.script(sid, [steps[0] + steps[1], *steps[2:]])  # the opening is held until content
    env = make_env(ANTHROPIC_BASE_URL=f"{UPSTREAM}/script/{sid}", ANTHROPIC_API_KEY="sk-ant")
    resp, ctx = await call_fetch(env, make_request(body=chat("claude-x", stream=True)))
    reader = resp.body.getReader()
    await read_event(reader)
    assert not TEST.gone(sid)
    await reader.cancel()  # the browser tab closed
    # The pump is cancelled at once (it was waiting for the upstream) and aborts the fetch.
    await wait_until(lambda: TEST.gone(sid), "upstream connection closed after cancel")
    await settled_ok(ctx)


@timeout(20)
async def test_client_cancel_aborts_the_upstream_passthrough():
    sid = "worker-cancel-pass"
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/ls/{sid}/5")
    resp, _ = await call_fetch(env, make_request(body=chat("gpt-x", stream=True)))
    reader = resp.body.getReader()
    await read_event(reader)
    await reader.cancel()  # cancels the upstream's own stream: the runtime drops the connection
    await wait_until(lambda: TEST.gone(sid), "upstream connection closed after cancel")


@timeout(20)
async def test_client_abort_while_waiting_for_headers():
    controller = js.AbortController.new()
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/slow/5000")
    request = make_request(body=chat("gpt-x"), signal=controller.signal)
    pending = asyncio.ensure_future(call_fetch(env, request))
    await asyncio.sleep(0.05)
    assert not pending.done()
    controller.abort()  # the client went away before the upstream answered
    resp, _ = await pending
    assert resp.status == 502  # nobody reads it; the point is that it did not wait 5 s


@timeout(10)
async def test_one_gateway_serves_concurrent_requests_each_with_its_own_abort_signal():
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/slow/400")
    gateway = entry.gateway_for(env)
    leaving, staying = js.AbortController.new(), js.AbortController.new()
    first = asyncio.ensure_future(
        call_fetch(env, make_request(body=chat("gpt-x"), signal=leaving.signal))
    )
    second = asyncio.ensure_future(
        call_fetch(env, make_request(body=chat("gpt-x"), signal=staying.signal))
    )
    await asyncio.sleep(0.05)
    assert not first.done() and not second.done()
    leaving.abort()  # only the first client goes away
    (gone, _), (kept, _) = await first, await second
    assert gone.status == 502
    assert kept.status == 200
    assert json.loads(await kept.text()) == {"slow": 400}
    # Both were served by the one gateway kept for this env (identity's caches with it).
    assert entry.gateway_for(env) is gateway


@timeout(20)
async def test_upstream_timeout_is_504():
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/slow/5000", EDGERELAY_UPSTREAM_TIMEOUT="0.1")
    resp, _ = await call_fetch(env, make_request(body=chat("gpt-x")))
    assert resp.status == 504
    assert json.loads(await resp.text())["error"]["code"] == "timeout"


@timeout(10)
async def test_unreachable_upstream_is_502():
    env = make_env(OPENAI_BASE_URL="http://127.0.0.1:9/v1")
    resp, _ = await call_fetch(env, make_request(body=chat("gpt-x")))
    assert resp.status == 502
    message = json.loads(await resp.text())["error"]["message"]
    assert "127.0.0.1" not in message  # never the URL


@timeout(10)
async def test_upstream_answer_without_a_body_is_passed_on():
    # 204/304 come with a null body: the JS Response constructor refuses any body with them,
    # so handing it the pump's stream made the Worker throw (a 500 from the runtime).
    # A 3xx is never passed on (the gateway follows no redirect and sends no conditional
    # request): a 304 is a 502, still without the Worker throwing.
    for status, expected in ((204, 204), (304, 502)):
        env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/status/{status}/v1", OPENAI_API_KEY="sk-x")
        resp, ctx = await call_fetch(env, make_request(body=chat("openai/gpt-x")))
        assert resp.status == expected
        text = await resp.text()
        assert text == "" if expected == 204 else json.loads(text)["error"]["code"] == "bad_gateway"
        await settled_ok(ctx)


@timeout(10)
async def test_upstream_request_as_core_built_it():
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/echo", OPENAI_API_KEY="sk-secret")
    resp, _ = await call_fetch(env, make_request(body=chat("openai/gpt-x")))
    assert resp.status == 200
    seen = json.loads(await resp.text())  # /echo answers with the request it got
    assert seen["method"] == "POST"
    assert seen["path"] == "/echo/chat/completions"
    assert seen["headers"]["authorization"] == "Bearer sk-secret"
    assert json.loads(seen["body"])["model"] == "gpt-x"  # prefix removed by core


@timeout(10)
async def test_config_error_is_503_and_not_cached():
    bad = make_env(OPENAI_BASE_URL="ftp://nope")
    resp, _ = await call_fetch(bad, make_request(body=chat("mock/echo")))
    assert resp.status == 503
    error = json.loads(await resp.text())["error"]
    assert "OPENAI_BASE_URL" in error["message"]
    assert "ftp://nope" not in error["message"]  # never the value itself
    # Fixed (a new env, as a new deployment gets): answered at once, no stale error.
    resp, _ = await call_fetch(make_env(), make_request(body=chat("mock/echo")))
    assert resp.status == 200


@timeout(10)
async def test_bad_json_is_400():
    resp, _ = await call_fetch(make_env(), make_request(body="{not json"))
    assert resp.status == 400
    assert json.loads(await resp.text())["error"]["type"] == "invalid_request_error"


@timeout(10)
async def test_body_over_the_limit_is_413():
    env = make_env(EDGERELAY_MAX_BODY_BYTES="100")
    resp, _ = await call_fetch(env, make_request(body=chat("mock/echo", content="x" * 200)))
    assert resp.status == 413
    assert json.loads(await resp.text())["error"]["code"] == "request_too_large"
    # On a passthrough route, in that provider's own error shape (so its SDK raises as usual).
    big = make_request("/anthropic/v1/messages", body=chat("claude-x", content="x" * 200))
    resp, _ = await call_fetch(env, big)
    assert resp.status == 413
    assert json.loads(await resp.text())["error"]["type"] == "request_too_large"


@timeout(10)
async def test_client_request_path_and_query_reach_core():
    resp, _ = await call_fetch(make_env(), make_request("/v1/models?x=1", method="GET"))
    assert resp.status == 200
    assert "mock/echo" in [m["id"] for m in json.loads(await resp.text())["data"]]
    resp, _ = await call_fetch(make_env(), make_request("/nowhere", method="GET"))
    assert resp.status == 404


async def _stream_cost(env, body, runs=3):
    """(best elapsed ms, SSE events received) for one streamed request, best of runs. The
    client reads in JS (arrayBuffer), so the figure is the Worker's side alone."""
    best = None
    for _ in range(runs):
        start = js.performance.now()
        resp, ctx = await call_fetch(env, make_request(body=body))
        raw = (await resp.arrayBuffer()).to_bytes()
        elapsed = js.performance.now() - start
        await settled_ok(ctx)
        if best is None or elapsed < best[0]:
            best = (elapsed, raw.count(b"data: "))
    return best


@timeout(60)
async def test_stream_cost_per_chunk():
    """Not a pass/fail speed test: prints the Worker's per-chunk cost under Pyodide.

    1. mock/echo: core yields one chunk per word and the pump writes each on its own:
       Python generator + JSON + to_js + TransformStream write, one event-loop turn each.
    2. translated (Anthropic SSE in, OpenAI SSE out): per upstream event, with fetch, the
       JS->Python body reads, core's SSE parse + translation and the pump (Node coalesces
       the upstream's writes, so several events share a read).
    """
    n = 2000
    words = " ".join(f"w{i}" for i in range(n))
    elapsed, events = await _stream_cost(make_env(), chat("mock/echo", words, stream=True))
    assert events >= n  # one pump write per word, plus the role and finish chunks and [DONE]
    print(f"    mock/echo stream: {elapsed * 1000 / events:.1f} us per chunk ({events} chunks)")

    sid = "worker-cost"
    TEST.script(sid, anthropic_steps([f" w{i}" for i in range(n)]), False)
    env = make_env(ANTHROPIC_BASE_URL=f"{UPSTREAM}/script/{sid}", ANTHROPIC_API_KEY="k")
    elapsed, events = await _stream_cost(env, chat("claude-x", stream=True))
    assert events >= n
    print(
        f"    translated stream: {elapsed * 1000 / n:.1f} us per upstream event"
        f" ({n} text deltas -> {events} OpenAI events, {elapsed:.0f} ms total)"
    )


@timeout(10)
async def test_config_cache_follows_the_env():
    # Two envs alternate: the per-isolate cache must follow the env object, not stick.
    a = make_env(EDGERELAY_MAX_BODY_BYTES="100")
    b = make_env()
    big = chat("mock/echo", content="x" * 200)
    for env, status in ((a, 413), (b, 200), (a, 413)):
        resp, _ = await call_fetch(env, make_request(body=big))
        assert resp.status == status


@timeout(10)
async def test_a_shared_fetch_is_not_aborted_with_the_client_that_started_it():
    # A JWKS download other requests wait for goes on when its starter's client has left.
    from js_fetch import CLIENT_SIGNAL, JsFetch

    from edgerelay.core.fetch import FetchError, FetchRequest

    gone = js.AbortController.new()
    gone.abort()
    token = CLIENT_SIGNAL.set(gone.signal)
    try:
        url = f"{UPSTREAM}/slow/50"
        try:
            await JsFetch()(FetchRequest("GET", url))
        except FetchError as exc:
            assert "went away" in str(exc)
        else:
            raise AssertionError("a request's own fetch must follow its client's abort")
        response = await JsFetch()(FetchRequest("GET", url, shared=True))
        try:
            assert response.status == 200
            assert json.loads(await response.read()) == {"slow": 50}
        finally:
            await response.aclose()
    finally:
        CLIENT_SIGNAL.reset(token)
