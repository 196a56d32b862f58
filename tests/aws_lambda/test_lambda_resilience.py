"""Retries, fallbacks and timeouts through the Lambda streaming loop (in-process, the same code
the subprocess runs) and the buffered handler, with the real httpx transport against the
loopback fault upstream. The gateway's sleep is injected: the waits are asserted, not waited."""

from __future__ import annotations

import asyncio
import json
import threading
import time

from functions.aws_lambda.app import create_app
from functions.aws_lambda.handler import BufferedHandler
from functions.aws_lambda.runtime_api import RuntimeAPI
from functions.aws_lambda.stream_loop import StreamLoop
from tests.aws_lambda.fake_runtime import WAIT
from tests.aws_lambda.lambda_events import chat, event
from tests.support import anthropic_wire as aw
from tests.support.faults import FaultUpstream, json_fault, sse_fault

SSE = {"content-type": "text/event-stream"}
OVERLOADED = aw.event(aw.message_start()) + aw.event(
    {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
)


class Waits(list):
    """The injected sleep: records each wait and moves a virtual clock on by it."""

    offset = 0.0

    async def __call__(self, seconds: float) -> None:
        self.append(seconds)
        self.offset += seconds

    def clock(self) -> float:
        return time.time() + self.offset


def stream_once(runtime, env: dict, body: dict, *, deadline_in: float = 60.0, path: str = ""):
    waits = Waits()
    # Lambda is a public target: these tests call it anonymously on purpose.
    app = create_app({**env, "EDGERELAY_ALLOW_ANONYMOUS": "true"}, sleep=waits)
    app.gateway.random = lambda: 0.5
    invocation = event("function-url", body, path=path)
    outcome = runtime.invoke(invocation, deadline_in=deadline_in)
    serve_one(runtime, app)
    return outcome, waits


def serve_one(runtime, app) -> None:
    """The real StreamLoop serves one invocation in this process; the app's client is closed."""
    loop = StreamLoop(RuntimeAPI(runtime.address), app)

    async def go():
        try:
            await loop.run(max_invocations=1)
        finally:
            await app.fetch.aclose()

    asyncio.run(asyncio.wait_for(go(), WAIT))


def test_the_stream_loop_retries_an_overloaded_stream_before_its_content(runtime):
    with FaultUpstream([sse_fault([OVERLOADED]), sse_fault([aw.text_stream("Hi", "!")])]) as up:
        env = {"ANTHROPIC_BASE_URL": up.url, "ANTHROPIC_API_KEY": "a-x"}
        outcome, waits = stream_once(runtime, env, chat("anthropic/claude-x"))
        assert up.wait_all_closed()
    assert outcome.prelude["statusCode"] == 200
    headers = outcome.prelude["headers"]
    assert headers["x-edgerelay-attempts"] == "2"
    assert headers["x-edgerelay-target"] == "anthropic/claude-x"
    assert b'"content":"Hi"' in outcome.body and outcome.body.endswith(b"data: [DONE]\n\n")
    assert waits == [0.25]
    assert len(up.seen) == 2


def test_the_stream_loop_gives_the_last_error_status_when_retries_run_out(runtime):
    with FaultUpstream([json_fault(503, {"error": {"message": "down"}})]) as up:
        env = {"OPENAI_BASE_URL": up.url + "/v1", "OPENAI_API_KEY": "sk-x"}
        outcome, waits = stream_once(runtime, env, chat("openai/gpt-x"))
        assert up.wait_all_closed()
    assert outcome.prelude["statusCode"] == 503
    assert outcome.prelude["headers"]["x-edgerelay-attempts"] == "3"
    assert json.loads(outcome.body)["error"]["message"] == "down"
    assert waits == [0.25, 0.5]


def test_the_invocation_deadline_caps_the_waits(runtime):
    # 3 s left less the 1 s margin: a Retry-After of 5 s is not waited.
    limited = json_fault(429, {"error": {"message": "slow"}}, **{"retry-after": "5"})
    with FaultUpstream([limited, json_fault(200, {"ok": True})]) as up:
        env = {"OPENAI_BASE_URL": up.url + "/v1", "OPENAI_API_KEY": "sk-x"}
        outcome, waits = stream_once(runtime, env, chat("openai/gpt-x"), deadline_in=3.0)
        assert up.wait_all_closed()
    assert outcome.prelude["statusCode"] == 429
    assert outcome.prelude["headers"]["retry-after"] == "5"
    assert waits == []
    assert len(up.seen) == 1


def test_the_stream_loop_never_retries_after_content(runtime):
    events = [aw.event(e) for e in [aw.message_start(), *aw.text_block(0, "Hel", "lo")]]
    with FaultUpstream([sse_fault(events, then="cut", after=3), sse_fault([b""])]) as up:
        env = {"ANTHROPIC_BASE_URL": up.url, "ANTHROPIC_API_KEY": "a-x"}
        outcome, waits = stream_once(runtime, env, chat("anthropic/claude-x"))
        assert up.wait_all_closed()
    assert outcome.prelude["statusCode"] == 200
    assert b'"content":"Hel"' in outcome.body and b"[DONE]" not in outcome.body
    assert (waits, len(up.seen)) == ([], 1)


class Context:
    def __init__(self, seconds: float) -> None:
        self._until = time.time() + seconds

    def get_remaining_time_in_millis(self) -> int:
        return int((self._until - time.time()) * 1000)


def test_the_buffered_handler_stops_retrying_at_api_gateways_29_seconds():
    # Retry-After 25 s is under EDGERELAY_RETRY_MAX_WAIT=60 and the invocation's 300 s, but
    # the second attempt would land past API Gateway's 29 s: not waited.
    limited = json_fault(429, {"error": {"message": "slow"}}, **{"retry-after": "25"})
    waits = Waits()
    with FaultUpstream([limited, limited, json_fault(200, {"ok": True})]) as up:
        env = {
            "OPENAI_BASE_URL": up.url + "/v1",
            "OPENAI_API_KEY": "sk-x",
            "EDGERELAY_RETRY_MAX_WAIT": "60",
            "EDGERELAY_ALLOW_ANONYMOUS": "true",
        }
        app = create_app(env, sleep=waits)
        app.gateway.clock = waits.clock
        handler = BufferedHandler(app)
        try:
            result = handler(event("http-api-v2", chat("openai/gpt-x", stream=False)), Context(300))
        finally:
            handler.close()
        assert up.wait_all_closed()
    assert result["statusCode"] == 429
    assert waits == [25.0]  # the first wait fits in 29 s; a second 25 s would not
    assert len(up.seen) == 2


# -- passthrough answers say what happened too ---------------------------------------------------

ANTHROPIC_DOWN = json_fault(529, {"type": "error", "error": {"type": "overloaded_error"}})
ANTHROPIC_MESSAGE = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "claude-x",
    "content": [{"type": "text", "text": "Hi"}],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
MESSAGES = {"model": "claude-x", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}


def test_the_stream_loop_tags_a_retried_passthrough_answer(runtime):
    with FaultUpstream([ANTHROPIC_DOWN, json_fault(200, ANTHROPIC_MESSAGE)]) as up:
        env = {"ANTHROPIC_BASE_URL": up.url, "ANTHROPIC_API_KEY": "a-x"}
        outcome, waits = stream_once(runtime, env, MESSAGES, path="/anthropic/v1/messages")
        assert up.wait_all_closed()
    assert outcome.prelude["statusCode"] == 200
    headers = outcome.prelude["headers"]
    assert (headers["x-edgerelay-attempts"], headers["x-edgerelay-target"]) == (
        "2",
        "anthropic/claude-x",
    )
    assert json.loads(outcome.body) == ANTHROPIC_MESSAGE
    assert waits == [0.25]


def test_the_stream_loop_tags_a_passthrough_error_given_up_on(runtime):
    with FaultUpstream([ANTHROPIC_DOWN]) as up:
        env = {"ANTHROPIC_BASE_URL": up.url, "ANTHROPIC_API_KEY": "a-x"}
        outcome, waits = stream_once(runtime, env, MESSAGES, path="/anthropic/v1/messages")
        assert up.wait_all_closed()
    assert outcome.prelude["statusCode"] == 529
    headers = outcome.prelude["headers"]
    assert (headers["x-edgerelay-attempts"], headers["x-edgerelay-target"]) == (
        "3",
        "anthropic/claude-x",
    )
    assert waits == [0.25, 0.5]


def test_the_buffered_handler_tags_a_retried_passthrough_answer():
    waits = Waits()
    gemini = {"candidates": [{"content": {"parts": [{"text": "Hi"}]}, "finishReason": "STOP"}]}
    path = "/gemini/v1beta/models/gemini-x:generateContent"
    with FaultUpstream([json_fault(503, {"error": {"code": 503}}), json_fault(200, gemini)]) as up:
        env = {
            "GEMINI_BASE_URL": up.url,
            "GEMINI_API_KEY": "g-x",
            "EDGERELAY_ALLOW_ANONYMOUS": "true",
        }
        app = create_app(env, sleep=waits)
        app.gateway.random = lambda: 0.5
        handler = BufferedHandler(app)
        try:
            result = handler(event("http-api-v2", {"contents": []}, path=path), Context(300))
        finally:
            handler.close()
        assert up.wait_all_closed()
    assert result["statusCode"] == 200
    headers = result["headers"]
    assert (headers["x-edgerelay-attempts"], headers["x-edgerelay-target"]) == (
        "2",
        "gemini/gemini-x",
    )
    assert json.loads(result["body"]) == gemini
    assert waits == [0.25]


# -- the total timeout bounds the body too ---------------------------------------------------


class Jump(threading.Event):
    """A fault's gate that, instead of waiting, moves the gateway's clock past the total
    timeout: what the upstream sends after it arrives too late."""

    def __init__(self, waits: Waits, seconds: float) -> None:
        super().__init__()
        self._waits, self._seconds = waits, seconds

    def wait(self, timeout=None) -> bool:
        self._waits.offset += self._seconds
        return True


def test_the_stream_loop_ends_a_stream_that_runs_past_the_total_timeout(runtime):
    waits = Waits()
    events = [aw.event(e) for e in [aw.message_start(), *aw.text_block(0, "Hel", "lo")]]
    late = sse_fault(events, after=2, then="rest", gate=Jump(waits, 120.0))
    body = {"model": "claude-x", "max_tokens": 5, "stream": True, "messages": []}
    with FaultUpstream([late]) as up:
        env = {
            "ANTHROPIC_BASE_URL": up.url,
            "ANTHROPIC_API_KEY": "a-x",
            "EDGERELAY_TOTAL_TIMEOUT": "60",
            "EDGERELAY_ALLOW_ANONYMOUS": "true",
        }
        app = create_app(env, sleep=waits)
        app.gateway.clock = waits.clock
        outcome = runtime.invoke(event("function-url", body, path="/anthropic/v1/messages"))
        serve_one(runtime, app)
        assert up.wait_all_closed()
    assert outcome.prelude["statusCode"] == 200
    last = outcome.body.rstrip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error\n") and b"total timeout" in last
    assert b"message_stop" not in outcome.body
    assert outcome.body.count(b"content_block_delta") <= 1  # what came before the jump only
