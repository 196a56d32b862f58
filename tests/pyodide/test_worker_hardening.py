"""The hardening limits through the Worker under real Pyodide, against the loopback upstream
(upstream.mjs): an oversized answer or event, requests past the message or value count or
holding a non-finite number, and a provider key echoed back by an upstream error."""

import json

import js
from async_runner import timeout
from workerd_call import UPSTREAM, call_fetch, load_entry, make_request, read_all
from workerd_call import make_env as workerd_env

entry = load_entry()
TEST = js.EDGERELAY_TEST
KEY = "sk-proj-worker-0123456789-abcdefgh"


def make_env(**settings):
    """The Worker is a public target: these tests opt in to anonymous calls explicitly."""
    return workerd_env(EDGERELAY_ALLOW_ANONYMOUS="true", **settings)


def chat(model, stream=False, **extra):
    return json.dumps(
        {"model": model, "stream": stream, "messages": [{"role": "user", "content": "x"}], **extra}
    )


def events(raw: bytes):
    from edgerelay.core.observer import events as parse

    return parse(raw)


def scripted(sid, steps, content_type="text/event-stream", **settings):
    """An env whose providers all answer with ``steps`` at once from /script/<sid>."""
    TEST.script(sid, steps, False, False, content_type)
    base = f"{UPSTREAM}/script/{sid}"
    return make_env(
        OPENAI_BASE_URL=base + "/v1",
        OPENAI_API_KEY="sk-o",
        ANTHROPIC_BASE_URL=base,
        ANTHROPIC_API_KEY="sk-a",
        **settings,
    )


@timeout(20)
async def test_an_answer_past_max_response_bytes_is_502():
    steps = ['{"id":"msg_1","content":[{"type":"text","text":"'] + ["a" * 1000] * 40 + ['"}]}']
    env = scripted("big-answer", steps, "application/json", EDGERELAY_MAX_RESPONSE_BYTES="4096")
    resp, ctx = await call_fetch(env, make_request(body=chat("anthropic/claude-x")))
    assert resp.status == 502
    error = json.loads(await resp.text())["error"]
    assert error["code"] == "response_too_large"
    assert "EDGERELAY_MAX_RESPONSE_BYTES" in error["message"]
    await ctx.settled()


START = (
    'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
    '"type":"message","role":"assistant","model":"claude-test","content":[],'
    '"usage":{"input_tokens":3,"output_tokens":0}}}\n\n'
)
HUGE = ['event: content_block_delta\ndata: {"type":"content_block_delta","x":"'] + ["A" * 1000] * 40


@timeout(20)
async def test_a_translated_event_past_max_event_bytes_ends_the_stream():
    env = scripted("big-event-translated", [START, *HUGE], EDGERELAY_MAX_EVENT_BYTES="8192")
    resp, ctx = await call_fetch(env, make_request(body=chat("anthropic/claude-x", stream=True)))
    assert resp.status == 200
    raw = await read_all(resp.body.getReader())
    assert json.loads(events(raw)[-1].data)["error"]["code"] == "event_too_large"
    assert b"[DONE]" not in raw and b"AAAA" not in raw
    await ctx.settled()


@timeout(20)
async def test_an_observed_passthrough_event_past_max_event_bytes_ends_the_stream():
    env = scripted(
        "big-event-native",
        [START, *HUGE],
        EDGERELAY_MAX_EVENT_BYTES="8192",
        EDGERELAY_ZERO_COPY="false",  # through core's observer (zero copy hands it on as is)
    )
    body = chat("claude-x", stream=True)
    resp, ctx = await call_fetch(env, make_request("/anthropic/v1/messages", body=body))
    assert resp.status == 200
    raw = await read_all(resp.body.getReader())
    assert raw.startswith(START.encode())
    last = events(raw)[-1]
    assert last.event == "error"
    assert "EDGERELAY_MAX_EVENT_BYTES" in json.loads(last.data)["error"]["message"]
    await ctx.settled()


def many(n):
    return [{"role": "user", "content": "x"}] * n


@timeout(20)
async def test_requests_past_the_request_limits_are_400():
    cases = [
        ({"EDGERELAY_MAX_MESSAGES": "3"}, json.dumps({"model": "mock/echo", "messages": many(4)})),
        ({"EDGERELAY_MAX_REQUEST_VALUES": "50"}, json.dumps({"model": "m", "messages": many(20)})),
        ({}, '{"model":"mock/echo","temperature":1e400,"messages":[]}'),
    ]
    params = ["messages", None, "temperature"]
    for (settings, body), param in zip(cases, params, strict=True):
        resp, _ = await call_fetch(make_env(**settings), make_request(body=body))
        assert resp.status == 400, settings
        error = json.loads(await resp.text())["error"]
        assert error["type"] == "invalid_request_error"
        if param is not None:
            assert error["param"] == param


@timeout(20)
async def test_a_provider_key_echoed_by_an_upstream_error_is_redacted():
    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/echo-status/401/v1", OPENAI_API_KEY=KEY)
    for path in ("/v1/chat/completions", "/openai/v1/chat/completions"):
        resp, ctx = await call_fetch(env, make_request(path, body=chat("openai/gpt-x")))
        assert resp.status == 401
        text = await resp.text()
        assert "authorization" in text and "[redacted]" in text  # the echo came back
        assert KEY not in text
        assert resp.headers.get("x-request-id") == "Bearer [redacted]"
        await ctx.settled()


@timeout(20)
async def test_a_key_in_a_log_line_of_the_worker_is_redacted():
    import io
    import logging

    env = make_env(OPENAI_BASE_URL=f"{UPSTREAM}/echo", OPENAI_API_KEY=KEY)
    gateway = entry.gateway_for(env)
    (handler,) = [h for h in logging.getLogger("edgerelay").handlers if h.get_name()]
    written = io.StringIO()
    kept, real = handler.setStream(written), gateway.fetch

    async def failing(request):  # a bug of ours whose message holds the key
        raise RuntimeError(f"could not send {request.headers['authorization']}")

    gateway.fetch = failing
    try:
        resp, _ = await call_fetch(env, make_request(body=chat("openai/gpt-x")))
    finally:
        gateway.fetch = real
        handler.setStream(kept)
    assert resp.status == 500
    log = written.getvalue()
    assert "RuntimeError: could not send Bearer [redacted]" in log  # the traceback, cleaned
    assert KEY not in log
