"""Retries, fallbacks and timeouts in the Cloudflare Worker under real Pyodide: the Worker's
handler with its js.fetch transport against the loopback upstream's /faults route. The Worker's
sleep seam is replaced by a recorder, so the waits asked for are asserted and never waited."""

import asyncio
import json
from contextlib import contextmanager

import js
from anthropic_sse import MESSAGE_START, anthropic_event
from async_runner import timeout
from workerd_call import UPSTREAM, call_fetch, load_entry, make_request, read_all
from workerd_call import make_env as workerd_env

entry = load_entry()


def make_env(**settings):
    """The Worker refuses anonymous model calls by default; these tests allow them."""
    return workerd_env(EDGERELAY_ALLOW_ANONYMOUS="true", **settings)


TEST = js.EDGERELAY_TEST
_ids = iter(range(1_000_000))


def chat(model, **extra):
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "Hi"}], **extra})


def faults(*steps):
    """Register ``steps`` under a fresh id; returns (base URL, id)."""
    name = f"r{next(_ids)}"
    TEST.faults(name, json.dumps(list(steps)))
    return f"{UPSTREAM}/faults/{name}", name


def openai_faults(*steps, **settings):
    """The Worker's env with OpenAI at a fresh /faults id that answers ``steps``: (env, id)."""
    base, name = faults(*steps)
    return make_env(OPENAI_BASE_URL=base + "/v1", OPENAI_API_KEY="sk-x", **settings), name


def error(status, message="busy", **headers):
    body = json.dumps({"error": {"message": message, "type": "server_error"}})
    return {
        "status": status,
        "headers": {"content-type": "application/json", **headers},
        "body": [body],
    }


ANSWER = {
    "status": 200,
    "headers": {"content-type": "application/json"},
    "body": [
        json.dumps(
            {
                "id": "c",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-x",
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "ok"},
                        "finish_reason": "stop",
                    }
                ],
            }
        )
    ],
}


START = MESSAGE_START
TEXT = anthropic_event(
    "content_block_start", index=0, content_block={"type": "text", "text": ""}
) + anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hello"})
END = (
    anthropic_event("content_block_stop", index=0)
    + anthropic_event(
        "message_delta", delta={"stop_reason": "end_turn"}, usage={"output_tokens": 1}
    )
    + anthropic_event("message_stop")
)
OVERLOADED = anthropic_event("error", error={"type": "overloaded_error", "message": "Overloaded"})
SSE = {"content-type": "text/event-stream"}


class Waits(list):
    async def __call__(self, seconds):
        self.append(seconds)


@contextmanager
def recorded_waits():
    """The Worker's sleep seam replaced by a recorder for the block: each wait asked for is
    kept, none is waited for."""
    waits = Waits()
    entry.sleep = waits
    entry.jitter = lambda: 0.5
    try:
        yield waits
    finally:
        entry.sleep = asyncio.sleep


async def settle(name):
    for _ in range(250):  # bounded: the upstream sees the close a moment after the abort
        if TEST.faultsOpen(name) == 0:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{TEST.faultsOpen(name)} upstream responses left open")


@timeout(20)
async def test_worker_retries_a_503_after_the_recorded_backoff():
    with recorded_waits() as waits:
        env, name = openai_faults(error(503), ANSWER)
        resp, _ = await call_fetch(env, make_request(body=chat("gpt-x")))
        assert resp.status == 200
        assert resp.headers.get("x-edgerelay-attempts") == "2"
        assert resp.headers.get("x-edgerelay-target") == "openai/gpt-x"
        assert json.loads(await resp.text())["choices"][0]["message"]["content"] == "ok"
        assert list(waits) == [0.25]
        assert TEST.faultsSeen(name) == 2
        await settle(name)


@timeout(20)
async def test_worker_honours_retry_after_and_gives_up_past_max_wait():
    with recorded_waits() as waits:
        env, name = openai_faults(
            error(429, **{"retry-after": "3"}), error(429, **{"retry-after": "99"})
        )
        resp, _ = await call_fetch(env, make_request(body=chat("gpt-x")))
        assert resp.status == 429
        assert resp.headers.get("retry-after") == "99"
        assert resp.headers.get("x-edgerelay-attempts") == "2"
        assert list(waits) == [3.0]
        await settle(name)


@timeout(20)
async def test_worker_retries_an_anthropic_error_event_before_content_never_after():
    with recorded_waits() as waits:
        base, name = faults(
            {"status": 200, "headers": SSE, "body": [START, OVERLOADED]},
            {"status": 200, "headers": SSE, "body": [START, TEXT, OVERLOADED]},
        )
        env = make_env(ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY="a-x")
        resp, _ = await call_fetch(env, make_request(body=chat("anthropic/claude-x", stream=True)))
        assert resp.status == 200
        body = await read_all(resp.body.getReader())
        assert b'"content":"Hello"' in body
        assert b"overloaded_error" in body and b"[DONE]" not in body  # terminal, not retried
        assert list(waits) == [0.25]
        await settle(name)


@timeout(20)
async def test_worker_idle_timeout_ends_a_stalled_stream_with_an_error():
    with recorded_waits() as waits:
        base, name = faults({"status": 200, "headers": SSE, "body": [START, TEXT], "then": "stall"})
        env = make_env(
            ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY="a-x", EDGERELAY_IDLE_TIMEOUT="0.2"
        )
        resp, _ = await call_fetch(env, make_request(body=chat("anthropic/claude-x", stream=True)))
        assert resp.status == 200
        body = await read_all(resp.body.getReader())
        assert b'"content":"Hello"' in body
        assert body.rstrip().endswith(b"}") and b'"error"' in body
        assert list(waits) == []
        assert TEST.faultsSeen(name) == 1
        await settle(name)


@timeout(20)
async def test_worker_falls_back_to_another_provider():
    with recorded_waits() as waits:
        down, down_name = faults(error(503))
        claude, claude_name = faults({"status": 200, "headers": SSE, "body": [START, TEXT, END]})
        config = '[aliases.smart]\ntargets = ["openai/gpt-x", "anthropic/claude-x"]\nretries = 1\n'
        env = make_env(
            OPENAI_BASE_URL=down + "/v1",
            OPENAI_API_KEY="sk-x",
            ANTHROPIC_BASE_URL=claude,
            ANTHROPIC_API_KEY="a-x",
            EDGERELAY_CONFIG=config,
        )
        resp, _ = await call_fetch(env, make_request(body=chat("smart", stream=True)))
        assert resp.status == 200
        body = await read_all(resp.body.getReader())
        assert b'"content":"Hello"' in body and body.endswith(b"data: [DONE]\n\n")
        assert resp.headers.get("x-edgerelay-target") == "anthropic/claude-x"
        assert resp.headers.get("x-edgerelay-attempts") == "3"
        assert list(waits) == [0.25]
        await settle(down_name)
        await settle(claude_name)


CHAT_CHUNK = (
    'data: {"id":"c","object":"chat.completion.chunk","choices":[{"index":0,'
    '"delta":{"content":"Hi"}}]}\n\n'
)
STALLED_CHAT = {"status": 200, "headers": SSE, "body": [CHAT_CHUNK], "then": "stall"}  # one chunk


@timeout(20)
async def test_worker_retries_a_passthrough_request_it_holds_whole():
    with recorded_waits() as waits:
        env, name = openai_faults(error(503), ANSWER)
        request = make_request("/openai/v1/chat/completions", body=chat("gpt-x"))
        resp, _ = await call_fetch(env, request)
        assert resp.status == 200
        assert json.loads(await resp.text())["choices"][0]["message"]["content"] == "ok"
        assert resp.headers.get("x-edgerelay-attempts") == "2"
        assert resp.headers.get("x-edgerelay-target") == "openai/gpt-x"
        assert list(waits) == [0.25]
        assert TEST.faultsSeen(name) == 2
        await settle(name)


@timeout(20)
async def test_worker_passthrough_error_given_up_on_says_how_many_attempts_were_made():
    with recorded_waits() as waits:
        base, name = faults(error(529))
        env = make_env(ANTHROPIC_BASE_URL=base, ANTHROPIC_API_KEY="a-x", EDGERELAY_RETRIES="1")
        body = json.dumps({"model": "claude-x", "max_tokens": 5, "messages": []})
        request = make_request("/anthropic/v1/messages", body=body)
        resp, _ = await call_fetch(env, request)
        assert resp.status == 529
        assert json.loads(await resp.text())["error"]["message"] == "busy"  # the provider's own
        assert resp.headers.get("x-edgerelay-attempts") == "2"
        assert resp.headers.get("x-edgerelay-target") == "anthropic/claude-x"
        assert list(waits) == [0.25]
        await settle(name)


@timeout(20)
async def test_worker_zero_copy_passthrough_stream_is_tagged_too():
    env, name = openai_faults(
        {"status": 200, "headers": SSE, "body": [CHAT_CHUNK, "data: [DONE]\n\n"]},
        EDGERELAY_IDLE_TIMEOUT="0",
    )
    request = make_request("/openai/v1/chat/completions", body=chat("gpt-x", stream=True))
    resp, ctx = await call_fetch(env, request)
    assert resp.status == 200
    assert ctx.pendingCount == 0  # handed over untouched: no pump
    assert resp.headers.get("x-edgerelay-attempts") == "1"
    assert resp.headers.get("x-edgerelay-target") == "openai/gpt-x"
    assert (await read_all(resp.body.getReader())).endswith(b"data: [DONE]\n\n")
    await settle(name)


@timeout(20)
async def test_worker_idle_timeout_set_times_a_passthrough_stream_through_the_observer():
    # Zero copy is the default, but with EDGERELAY_IDLE_TIMEOUT set the stream is pumped
    # through core (the idle hook watches it), where each read of the upstream is timed.
    env, name = openai_faults(STALLED_CHAT, EDGERELAY_IDLE_TIMEOUT="0.2")
    request = make_request("/openai/v1/chat/completions", body=chat("gpt-x", stream=True))
    resp, ctx = await call_fetch(env, request)
    assert resp.status == 200
    assert ctx.pendingCount == 1  # the pump: not the upstream's own stream
    body = await read_all(resp.body.getReader())
    assert body.startswith(CHAT_CHUNK.encode())
    last = json.loads(body.rstrip().split(b"\n\n")[-1].removeprefix(b"data: "))
    assert "idle timeout" in last["error"]["message"]
    await ctx.settled()
    await settle(name)


class FakeTimers:
    """The Worker's timers (js_fetch.timers) without waiting: each timer is kept until the
    test fires it by its delay, or the code clears it."""

    def __init__(self) -> None:
        self.pending: dict[int, tuple] = {}
        self._ids = iter(range(1, 1_000_000))

    def setTimeout(self, callback, ms):  # the JS names
        timer = next(self._ids)
        self.pending[timer] = (callback, ms)
        return timer

    def clearTimeout(self, timer):
        self.pending.pop(timer, None)

    def delays(self):
        """Pending delays in whole seconds (a timeout is what is left of it: a hair under)."""
        return sorted(round(ms / 1000) for _, ms in self.pending.values())

    def fire(self, ms):
        due = [t for t, (_, delay) in self.pending.items() if round(delay / 1000) == ms / 1000]
        assert due, f"no timer of {ms} ms pending (pending: {self.delays()})"
        for timer in due:
            callback, _ = self.pending.pop(timer)
            callback()


@contextmanager
def fake_timers():
    """The Worker's timers replaced by FakeTimers for the block."""
    import js_fetch  # the Worker's module, loaded with the entry

    timers = FakeTimers()
    js_fetch.timers = timers
    try:
        yield timers
    finally:
        js_fetch.timers = js


async def until(condition):
    for _ in range(250):  # bounded: the pump reaches its next read a moment later
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


@timeout(20)
async def test_worker_total_timeout_ends_a_pumped_passthrough_stream():
    with fake_timers() as timers:
        settings = {"EDGERELAY_ZERO_COPY": "false", "EDGERELAY_TOTAL_TIMEOUT": "60"}
        env, name = openai_faults(STALLED_CHAT, **settings)
        request = make_request("/openai/v1/chat/completions", body=chat("gpt-x", stream=True))
        resp, ctx = await call_fetch(env, request)
        assert resp.status == 200
        reader = resp.body.getReader()
        first = await reader.read()
        assert first.value.to_bytes() == CHAT_CHUNK.encode()
        assert 60 in timers.delays()  # the total timeout, armed at the request's start
        timers.fire(60_000)
        body = await read_all(reader)
        last = json.loads(body.rstrip().split(b"\n\n")[-1].removeprefix(b"data: "))
        assert "total timeout" in last["error"]["message"]
        await ctx.settled()
        await settle(name)
        assert timers.pending == {}  # every timer cleared once the body ended


@timeout(20)
async def test_worker_total_timeout_bounds_a_zero_copy_stream_too():
    with fake_timers() as timers:
        env, name = openai_faults(
            STALLED_CHAT,
            EDGERELAY_TOTAL_TIMEOUT="60",
            EDGERELAY_IDLE_TIMEOUT="off",  # zero copy: only the total timer bounds it
        )
        request = make_request("/openai/v1/chat/completions", body=chat("gpt-x", stream=True))
        resp, ctx = await call_fetch(env, request)
        assert ctx.pendingCount == 0  # zero copy: Python never reads this body
        reader = resp.body.getReader()
        assert (await reader.read()).value.to_bytes() == CHAT_CHUNK.encode()
        timers.fire(60_000)
        failed = False
        try:
            await read_all(reader)
        except Exception:
            failed = True  # the runtime errors the client's stream: cut, never silent
        assert failed
        await settle(name)


@timeout(20)
async def test_worker_idle_timeout_at_its_default_ends_a_stalled_passthrough_stream():
    # Nothing set: the passthrough stream is pumped through core and each read idle-timed
    # (600 s, fired here by the fake timers, not waited for).
    with fake_timers() as timers:
        env, name = openai_faults(STALLED_CHAT)
        request = make_request("/openai/v1/chat/completions", body=chat("gpt-x", stream=True))
        resp, ctx = await call_fetch(env, request)
        assert resp.status == 200
        assert ctx.pendingCount == 1  # the pump: not the upstream's own stream
        reader = resp.body.getReader()
        assert (await reader.read()).value.to_bytes() == CHAT_CHUNK.encode()
        await until(lambda: 600 in timers.delays())  # the next read waits, timed
        timers.fire(600_000)
        body = await read_all(reader)
        last = json.loads(body.rstrip().split(b"\n\n")[-1].removeprefix(b"data: "))
        assert "idle timeout" in last["error"]["message"]
        assert b"[DONE]" not in body
        await ctx.settled()
        await settle(name)
        assert timers.pending == {}


@timeout(20)
async def test_worker_idle_timeout_off_is_zero_copy_and_arms_no_idle_timer():
    with fake_timers() as timers:
        done = {"status": 200, "headers": SSE, "body": [CHAT_CHUNK, "data: [DONE]\n\n"]}
        env, name = openai_faults(done, EDGERELAY_IDLE_TIMEOUT="off")
        request = make_request("/openai/v1/chat/completions", body=chat("gpt-x", stream=True))
        resp, ctx = await call_fetch(env, request)
        assert ctx.pendingCount == 0  # zero copy
        assert timers.delays() == [900]  # only the total timeout: no per-chunk timer
        assert (await read_all(resp.body.getReader())).endswith(b"data: [DONE]\n\n")
        await settle(name)
