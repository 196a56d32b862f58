"""Streams that break after the first byte, through the Worker under real Pyodide: the loopback
upstream drops its connection mid-event, and the client reads the terminal error in the
protocol of the route it called, then a normally finished body. Passthrough routes go through
the stream observer (by default: the idle timeout watches them; here with
EDGERELAY_ZERO_COPY=false); with zero copy (EDGERELAY_IDLE_TIMEOUT=off) the upstream's own
stream reaches the client, and a cut reaches it as the runtime leaves it.

Also prints the observer's CPU cost per chunk under Pyodide."""

import json

import js
from async_runner import timeout
from workerd_call import UPSTREAM, call_fetch, load_entry, make_request, read_all
from workerd_call import make_env as workerd_env

entry = load_entry()
TEST = js.EDGERELAY_TEST

CHAT = "".join(
    'data: {"id":"c","choices":[{"index":0,"delta":{"content":"' + w + '"}}]}\n\n'
    for w in ("Hi", " there")
)
RESPONSES_CREATED = (
    'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
    '"response":{"id":"resp_1","object":"response","status":"in_progress"}}\n\n'
)
ANTHROPIC_START = (
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
    '"type":"message","role":"assistant","model":"claude-test","content":[],'
    '"usage":{"input_tokens":3,"output_tokens":0}}}\n\n'
)
ANTHROPIC_TEXT = (
    'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
    '"content_block":{"type":"text","text":""}}\n\n'
    'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
    '"delta":{"type":"text_delta","text":"Hi"}}\n\n'
)
GEMINI_FRAME = '{"candidates":[{"content":{"parts":[{"text":"Hi"}],"role":"model"}}]}'
HALF = 'event: x\ndata: {"type'  # half an event: never reaches the client
GEMINI = "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"


def make_env(**settings):
    """The Worker is a public target: these tests opt in to anonymous calls explicitly."""
    return workerd_env(EDGERELAY_ALLOW_ANONYMOUS="true", **settings)


def chat(model: str) -> str:
    return json.dumps(
        {"model": model, "stream": True, "messages": [{"role": "user", "content": "x"}]}
    )


def events(raw: bytes):
    from edgerelay.core.observer import events as parse

    return parse(raw)


async def cut_stream(sid, path, steps, content_type="text/event-stream", **settings):
    TEST.script(sid, steps, False, True, content_type)
    base = f"{UPSTREAM}/script/{sid}"
    env = make_env(
        OPENAI_BASE_URL=base + "/v1",
        OPENAI_API_KEY="sk-o",
        ANTHROPIC_BASE_URL=base,
        ANTHROPIC_API_KEY="sk-a",
        GEMINI_BASE_URL=base,
        GEMINI_API_KEY="g",
        **settings,
    )
    body = chat("x")
    resp, ctx = await call_fetch(env, make_request(path, body=body))
    assert resp.status == 200
    raw = await read_all(resp.body.getReader())  # ends normally: the error is in the body
    await ctx.settled()
    return resp, raw


@timeout(20)
async def test_openai_chat_passthrough_cut_mid_way():
    _, raw = await cut_stream(
        "mid-chat", "/openai/v1/chat/completions", [CHAT, HALF], EDGERELAY_ZERO_COPY="false"
    )
    assert raw.startswith(CHAT.encode())
    parsed = events(raw[len(CHAT) :])
    assert len(parsed) == 1
    assert "broke off" in json.loads(parsed[0].data)["error"]["message"]
    assert b"[DONE]" not in raw


@timeout(20)
async def test_responses_passthrough_cut_mid_way():
    _, raw = await cut_stream(
        "mid-resp", "/openai/v1/responses", [RESPONSES_CREATED, HALF], EDGERELAY_ZERO_COPY="false"
    )
    last = events(raw)[-1]
    assert last.event == "response.failed"
    failed = json.loads(last.data)["response"]
    assert failed["id"] == "resp_1" and failed["status"] == "failed"
    assert "broke off" in failed["error"]["message"]


@timeout(20)
async def test_anthropic_passthrough_cut_mid_way():
    _, raw = await cut_stream(
        "mid-anth", "/anthropic/v1/messages", [ANTHROPIC_START, HALF], EDGERELAY_ZERO_COPY="false"
    )
    parsed = events(raw)
    assert parsed[0].event == "message_start"
    assert parsed[-1].event == "error"
    assert json.loads(parsed[-1].data)["error"]["type"] == "api_error"


@timeout(20)
async def test_gemini_passthrough_cut_mid_way_sse_and_json_array():
    sse = f"data: {GEMINI_FRAME}\r\n\r\n"
    _, raw = await cut_stream(
        "mid-gem", GEMINI + "?alt=sse", [sse, "data: {"], EDGERELAY_ZERO_COPY="false"
    )
    assert json.loads(events(raw)[-1].data)["error"]["status"] == "UNAVAILABLE"
    steps = ["[" + GEMINI_FRAME, '\r\n,{"candi']
    _, raw = await cut_stream(
        "mid-gem-json", GEMINI, steps, "application/json", EDGERELAY_ZERO_COPY="false"
    )
    array = json.loads(raw)  # still one valid JSON array
    assert array[0] == json.loads(GEMINI_FRAME)
    assert array[-1]["error"]["code"] == 502


@timeout(20)
async def test_translated_stream_cut_mid_way_with_default_settings():
    # Content first: a stream that breaks before any content is retried instead.
    TEST.script("mid-trans", [ANTHROPIC_START, ANTHROPIC_TEXT, HALF], False, True)
    env = make_env(ANTHROPIC_BASE_URL=f"{UPSTREAM}/script/mid-trans", ANTHROPIC_API_KEY="k")
    body = chat("claude-x")
    resp, ctx = await call_fetch(env, make_request(body=body))
    raw_body = await read_all(resp.body.getReader())
    await ctx.settled()
    parsed = events(raw_body)
    assert json.loads(parsed[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert "broke off" in json.loads(parsed[-1].data)["error"]["message"]
    assert all(e.data != "[DONE]" for e in parsed)


@timeout(20)
async def test_a_chat_stream_ending_cleanly_without_done():
    TEST.script("mid-nodone", [CHAT], False)
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/script/mid-nodone", EDGERELAY_ZERO_COPY="false")
    body = chat("gpt-x")
    resp, ctx = await call_fetch(env, make_request(body=body))
    raw = await read_all(resp.body.getReader())
    await ctx.settled()
    assert raw.startswith(CHAT.encode())
    assert "ended before" in json.loads(events(raw)[-1].data)["error"]["message"]
    assert b"[DONE]" not in raw


@timeout(20)
async def test_zero_copy_leaves_a_cut_to_the_runtime():
    TEST.script("mid-zero", [CHAT, HALF], False, True)
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/script/mid-zero", EDGERELAY_IDLE_TIMEOUT="off")
    body = chat("gpt-x")
    resp, ctx = await call_fetch(env, make_request(body=body))
    assert ctx.pendingCount == 0  # no pump: the upstream's own stream is the client's body
    reader, raw, failed = resp.body.getReader(), b"", False
    try:
        while True:
            chunk = await reader.read()
            if chunk.done:
                break
            raw += chunk.value.to_bytes()
    except Exception:
        failed = True  # the runtime errors the stream: no terminal event, but not silent
    assert failed
    assert b'"error"' not in raw


@timeout(60)
async def test_observer_cost_per_chunk():
    """Not a pass/fail speed test: prints the stream observer's CPU per chunk under Pyodide,
    and what a watched passthrough costs against a zero-copy one end to end."""
    from edgerelay.core.observer import StreamObserver

    chunk = (
        b'data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,'
        b'"model":"gpt-4.1-mini","choices":[{"index":0,"delta":{"content":" word"},'
        b'"finish_reason":null}]}\n\n'
    )
    n = 20_000
    best = None
    for _ in range(3):
        observer = StreamObserver("chat")
        start = js.performance.now()
        for _ in range(n):
            observer.feed(chunk)
        observer.feed(b"data: [DONE]\n\n")
        elapsed = js.performance.now() - start
        best = elapsed if best is None else min(best, elapsed)
    per_chunk = best * 1000 / n
    print(f"    stream observer alone: {per_chunk:.2f} us per chunk ({len(chunk)} B chunks)")
    print(f"    10 ms of CPU (Workers free plan) = {10_000 / per_chunk:,.0f} observed chunks")

    events_n = 2000
    steps = [chunk.decode()] * events_n + ["data: [DONE]\n\n"]
    modes = {
        "zero copy (EDGERELAY_IDLE_TIMEOUT=off)": {"EDGERELAY_IDLE_TIMEOUT": "off"},
        "observed, not idle-timed (ZERO_COPY=false, IDLE_TIMEOUT=off)": {
            "EDGERELAY_ZERO_COPY": "false",
            "EDGERELAY_IDLE_TIMEOUT": "off",
        },
        "default: observed and idle-timed": {},
    }
    for number, (mode, settings) in enumerate(modes.items()):
        sid = f"observer-cost-{number}"
        TEST.script(sid, steps, False)
        env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/script/{sid}", **settings)
        body = chat("gpt-x")
        fastest = None
        for _ in range(3):
            start = js.performance.now()
            resp, ctx = await call_fetch(env, make_request(body=body))
            raw = (await resp.arrayBuffer()).to_bytes()
            elapsed = js.performance.now() - start
            await ctx.settled()
            assert raw.count(b"data: ") == events_n + 1
            fastest = elapsed if fastest is None else min(fastest, elapsed)
        print(
            f"    passthrough, {mode}: {fastest:.0f} ms wall for"
            f" {events_n} events ({fastest * 1000 / events_n:.1f} us per event, upstream reads"
            " included)"
        )
