"""The streaming loop in-process (same code as the subprocess runs) with a fake Fetch, for the
cases a real upstream cannot stage: stream caps, a bug before and after the first byte, a
deadline reached before the upstream answered, a Runtime API that goes away."""

from __future__ import annotations

import asyncio
import base64
import json
import os

from edgerelay.core import Response
from edgerelay.core.fetch import FetchRequest
from functions.aws_lambda.app import create_app
from functions.aws_lambda.runtime_api import Invocation, RuntimeAPI
from functions.aws_lambda.stream_loop import StreamLoop
from tests.aws_lambda.conftest import ANONYMOUS
from tests.aws_lambda.fake_runtime import WAIT
from tests.aws_lambda.lambda_events import chat, event
from tests.support.fake_fetch import FakeFetch, FakeResponse

SSE = {"content-type": "text/event-stream"}
OPENAI = {"OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}


class StallingResponse(FakeResponse):
    """Sends its chunks, then never finishes (until closed or WAIT)."""

    async def aiter_bytes(self):
        for chunk in self.chunks:
            yield chunk
        await asyncio.sleep(WAIT)


def run(runtime, app, invocations: int) -> None:
    loop = StreamLoop(RuntimeAPI(runtime.address), app)
    asyncio.run(asyncio.wait_for(loop.run(max_invocations=invocations), WAIT))


def error_event(body: bytes) -> dict:
    assert body.endswith(b"\n\n")
    last = body.rstrip(b"\n").rsplit(b"\n\n", 1)[-1]
    assert last.startswith(b"data: ")
    return json.loads(last[len(b"data: ") :])["error"]


def test_size_cap_ends_an_event_stream_cleanly_with_an_error_event(runtime):
    app = create_app(
        {**ANONYMOUS, "EDGERELAY_MAX_STREAM_BYTES": "600"}, FakeFetch(lambda r: FakeResponse())
    )
    outcome = runtime.invoke(event("function-url", chat(text="one two three four five six")))
    run(runtime, app, 1)

    assert outcome.clean_end and outcome.trailers == {}
    assert outcome.prelude["statusCode"] == 200
    assert len(outcome.body) < 600 + 300  # the cap, plus the error event itself
    assert b"[DONE]" not in outcome.body
    error = error_event(outcome.body)
    assert error["code"] == "stream_size_limit"
    assert "EDGERELAY_MAX_STREAM_BYTES" in error["message"]


def test_duration_cap_stops_the_upstream(runtime):
    upstream = StallingResponse(200, SSE, [b'data: {"n":1}\n\n'])
    fetch = FakeFetch(lambda r: upstream)
    app = create_app({**ANONYMOUS, **OPENAI, "EDGERELAY_MAX_STREAM_SECONDS": "0.2"}, fetch)
    outcome = runtime.invoke(event("rest-api-v1", chat("openai/x")))
    run(runtime, app, 1)

    assert upstream.closed
    assert outcome.clean_end and outcome.trailers == {}
    assert outcome.body.startswith(b'data: {"n":1}\n\n')
    assert error_event(outcome.body)["code"] == "stream_time_limit"


def test_a_cut_body_that_is_not_an_event_stream_is_flagged_in_the_trailers(runtime):
    upstream = StallingResponse(200, {"content-type": "application/json"}, [b'{"partial":'])
    app = create_app(
        {**ANONYMOUS, **OPENAI, "EDGERELAY_MAX_STREAM_SECONDS": "0.2"},
        FakeFetch(lambda r: upstream),
    )
    outcome = runtime.invoke(event("function-url", chat("openai/x", stream=False)))
    run(runtime, app, 1)

    assert outcome.body == b'{"partial":'  # nothing glued onto a JSON body
    assert outcome.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.StreamTimeLimit"
    document = json.loads(base64.b64decode(outcome.trailers["Lambda-Runtime-Function-Error-Body"]))
    assert "EDGERELAY_MAX_STREAM_SECONDS" in document["errorMessage"]


def test_deadline_before_the_upstream_answers_is_a_504_response(runtime):
    class SlowFetch:
        async def __call__(self, request: FetchRequest):
            await asyncio.sleep(WAIT)

    app = create_app({**ANONYMOUS, **OPENAI, "EDGERELAY_DEADLINE_MARGIN_MS": "1000"}, SlowFetch())
    outcome = runtime.invoke(event("function-url", chat("openai/x")), deadline_in=1.3)
    run(runtime, app, 1)

    assert outcome.prelude["statusCode"] == 504
    assert json.loads(outcome.body)["error"]["code"] == "timeout"
    assert outcome.clean_end and outcome.trailers == {}


def test_a_crash_before_the_first_byte_goes_to_invocation_error(runtime):
    app = create_app(ANONYMOUS, FakeFetch(lambda r: FakeResponse()))

    async def broken(request, **_):
        raise RuntimeError("secret detail sk-123")

    app.gateway.handle = broken
    crashed = runtime.invoke(event("function-url", chat()))
    run(runtime, app, 1)

    assert crashed.kind == "error"
    assert crashed.headers["lambda-runtime-function-error-type"] == "Edgerelay.RuntimeError"
    assert crashed.error == {
        "errorMessage": "Internal gateway error.",
        "errorType": "Edgerelay.RuntimeError",
        "stackTrace": [],
    }


def test_a_crash_mid_stream_sends_an_error_event_then_trailers(runtime):
    app = create_app(ANONYMOUS, FakeFetch(lambda r: FakeResponse()))

    async def body():
        yield b'data: {"n":1}\n\n'
        yield b'data: {"n":'
        raise ValueError("bug in a translator")

    async def handle(request, **_):
        return Response(200, [("content-type", "text/event-stream")], stream=body())

    app.gateway.handle = handle
    outcome = runtime.invoke(event("function-url", chat()))
    run(runtime, app, 1)

    assert outcome.body.startswith(b'data: {"n":1}\n\ndata: {"error":')
    assert error_event(outcome.body)["message"] == "Internal gateway error."
    assert outcome.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.InternalError"
    assert b"bug in a translator" not in outcome.raw


def test_a_bad_base64_body_is_a_400_not_a_crash(runtime):
    app = create_app(ANONYMOUS, FakeFetch(lambda r: FakeResponse()))
    broken = event("function-url", chat())
    broken["body"] = "%%%not base64"
    outcome = runtime.invoke(broken)
    run(runtime, app, 1)

    assert outcome.prelude["statusCode"] == 400
    assert "base64" in json.loads(outcome.body)["error"]["message"]


def test_a_translated_stream_cut_by_the_upstream_is_flagged_in_the_trailers(runtime):
    # Core turns the cut into an in-band error event; the loop also sets the error trailers.
    anthropic_sse = [
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1",'
        b'"type":"message","role":"assistant","model":"claude-test","content":[],'
        b'"usage":{"input_tokens":3,"output_tokens":0}}}\n\n',
        # Some content first: a cut before any content is retried instead (not a stream yet).
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n'
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"Hi"}}\n\n',
    ]
    upstream = FakeResponse(200, SSE, anthropic_sse, error_after=2)
    env = {"ANTHROPIC_API_KEY": "sk-ant-test", "ANTHROPIC_BASE_URL": "http://127.0.0.1:9"}
    app = create_app({**ANONYMOUS, **env}, FakeFetch(lambda r: upstream))
    outcome = runtime.invoke(event("function-url", chat(model="anthropic/claude-test")))
    run(runtime, app, 1)

    assert outcome.prelude["statusCode"] == 200
    assert b'"role":"assistant"' in outcome.body
    assert "broke off" in error_event(outcome.body)["message"]
    assert outcome.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.UpstreamError"
    assert b"sk-ant-test" not in outcome.raw


def test_a_first_chunk_over_the_size_cap_is_never_sent(runtime):
    # The cap was only checked from the second chunk on: one big first read went out whole.
    big = b"".join(b'data: {"n":%d}\n\n' % i for i in range(200))  # ~3 KB in one read
    upstream = FakeResponse(200, SSE, [big, b"data: [DONE]\n\n"])
    app = create_app(
        {**ANONYMOUS, **OPENAI, "EDGERELAY_MAX_STREAM_BYTES": "600"}, FakeFetch(lambda r: upstream)
    )
    outcome = runtime.invoke(event("function-url", chat("openai/x")))
    run(runtime, app, 1)

    assert upstream.closed
    assert outcome.clean_end
    assert b'{"n":0}' not in outcome.body  # nothing is sent before the first byte is decided
    assert outcome.prelude["statusCode"] == 502
    assert json.loads(outcome.body)["error"]["code"] == "stream_size_limit"


def test_an_invocation_without_a_trace_id_does_not_inherit_the_previous_one(runtime, monkeypatch):
    # As the managed runtime (awslambdaric's update_xray_env_variable): set, or removed.
    monkeypatch.setenv("_X_AMZN_TRACE_ID", "Root=1-previous-invocation")
    app = create_app(ANONYMOUS, FakeFetch(lambda r: FakeResponse()))
    loop = StreamLoop(RuntimeAPI(runtime.address), app)
    body = json.dumps(event("function-url", chat(stream=False))).encode()
    traced, untraced = (runtime.invoke(body) for _ in range(2))
    seen = []

    async def scenario():
        await loop.handle(Invocation(traced.request_id, None, None, "Root=1-this-one", body))
        seen.append(os.environ.get("_X_AMZN_TRACE_ID"))
        await loop.handle(Invocation(untraced.request_id, None, None, None, body))
        seen.append(os.environ.get("_X_AMZN_TRACE_ID"))

    asyncio.run(asyncio.wait_for(scenario(), WAIT))
    assert seen == ["Root=1-this-one", None]
    assert runtime.wait(untraced).prelude["statusCode"] == 200
