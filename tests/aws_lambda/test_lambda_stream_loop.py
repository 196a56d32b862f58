"""The real streaming loop, started through ``stream-wrapper`` as Lambda starts it, against a
loopback fake Runtime API and a lock-step fake OpenAI upstream. No timing assertions: streaming
is proven by the upstream sending chunk k+1 only after the Runtime API has received chunk k."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time

import pytest

from tests.aws_lambda.conftest import WRAPPER
from tests.aws_lambda.fake_runtime import WAIT
from tests.aws_lambda.lambda_events import chat, event
from tests.support.loopback import Reply
from tests.support.openai_wire import openai_chunks

SSE = {"content-type": "text/event-stream; charset=utf-8"}
PRELUDE_TYPE = "application/vnd.awslambda.http-integration-response"


def upstream_env(upstream) -> dict[str, str]:
    return {"OPENAI_BASE_URL": upstream.url + "/v1", "OPENAI_API_KEY": "sk-upstream-secret"}


def lockstep(runtime, upstream, chunks: list[bytes]) -> list[bytes]:
    """Release the upstream's chunk k+1 only once the Runtime API holds chunks 0..k; returns
    the body the Runtime API held at each release, for the test to check."""
    marks = [sum(len(c) for c in chunks[: k + 1]) for k in range(len(chunks))]
    held_at_release: list[bytes] = []
    lock = threading.Lock()

    def on_chunk(outcome) -> None:
        with lock:
            body = outcome.body
            while (
                len(held_at_release) < len(chunks) - 1 and len(body) >= marks[len(held_at_release)]
            ):
                held_at_release.append(body)
                upstream.release()

    runtime.on_chunk = on_chunk
    return held_at_release


@pytest.mark.parametrize("kind", ["function-url", "rest-api-v1"])
def test_streams_prelude_then_each_chunk_as_it_arrives(runtime, upstream, start_loop, kind):
    chunks = openai_chunks()
    upstream.handler = lambda seen: Reply(200, SSE, chunks, lockstep=True)
    held = lockstep(runtime, upstream, chunks)
    start_loop(upstream_env(upstream))

    outcome = runtime.wait(runtime.invoke(event(kind, chat("openai/gpt-4.1-mini"))))

    assert outcome.kind == "response" and outcome.clean_end
    assert outcome.headers["lambda-runtime-function-response-mode"] == "streaming"
    assert outcome.headers["transfer-encoding"] == "chunked"
    assert outcome.headers["content-type"] == PRELUDE_TYPE
    trailer = {t.strip().lower() for t in outcome.headers["trailer"].split(",")}
    assert trailer == {"lambda-runtime-function-error-type", "lambda-runtime-function-error-body"}
    prelude = outcome.prelude
    assert set(prelude) == {"statusCode", "headers", "cookies"}
    assert (prelude["statusCode"], prelude["cookies"]) == (200, [])
    assert prelude["headers"]["content-type"] == "text/event-stream; charset=utf-8"
    assert outcome.body == b"".join(chunks)
    assert outcome.trailers == {}
    # Chunk by chunk: when the upstream was let go with chunk k+1, the Runtime API held 0..k.
    assert held == [b"".join(chunks[: k + 1]) for k in range(len(chunks) - 1)]
    seen = upstream.seen[-1]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == "Bearer sk-upstream-secret"


def test_error_decided_before_the_first_byte_is_a_normal_response(runtime, upstream, start_loop):
    error = {"error": {"message": "Slow down", "type": "rate_limit_error", "code": "rate"}}
    upstream.handler = lambda seen: Reply(
        429, {"content-type": "application/json"}, [json.dumps(error).encode()]
    )
    start_loop(upstream_env(upstream))

    limited = runtime.wait(runtime.invoke(event("function-url", chat("openai/gpt-4.1-mini"))))
    bad_json = runtime.wait(runtime.invoke(event("rest-api-v1", b"{not json")))
    unknown = runtime.wait(runtime.invoke(event("function-url", None, method="GET", path="/nope")))

    assert limited.prelude["statusCode"] == 429
    assert json.loads(limited.body)["error"]["message"] == "Slow down"
    assert bad_json.prelude["statusCode"] == 400
    assert json.loads(bad_json.body)["error"]["type"] == "invalid_request_error"
    assert unknown.prelude["statusCode"] == 404
    for outcome in (limited, bad_json, unknown):
        assert outcome.clean_end and outcome.trailers == {}
        assert outcome.prelude["headers"]["content-type"] == "application/json"
        assert b"sk-upstream-secret" not in outcome.raw


def test_upstream_cut_mid_stream_ends_with_an_error_event_and_trailers(
    runtime, upstream, start_loop
):
    chunks = openai_chunks()
    # Three whole events, then half of the fourth, then the connection drops.
    upstream.handler = lambda seen: Reply(
        200, SSE, [*chunks[:3], chunks[3][:20], b"never sent"], cut_after=4
    )
    start_loop(upstream_env(upstream))

    outcome = runtime.wait(runtime.invoke(event("function-url", chat("openai/gpt-4.1-mini"))))

    assert outcome.prelude["statusCode"] == 200
    body = outcome.body
    # The half event is dropped so the error event is read on its own, in OpenAI's shape.
    assert body.startswith(b"".join(chunks[:3]))
    tail = body[len(b"".join(chunks[:3])) :]
    assert tail.startswith(b"data: ") and tail.endswith(b"\n\n")
    error = json.loads(tail[len(b"data: ") :])["error"]
    assert error["type"] == "api_error" and error["message"].startswith("The upstream stream")
    assert outcome.trailers["Lambda-Runtime-Function-Error-Type"] == "Edgerelay.UpstreamError"
    document = json.loads(base64.b64decode(outcome.trailers["Lambda-Runtime-Function-Error-Body"]))
    assert document["errorType"] == "Edgerelay.UpstreamError"
    assert document["errorMessage"] == error["message"]


def test_an_event_that_is_not_http_is_reported_to_error_and_the_loop_goes_on(runtime, start_loop):
    start_loop()

    garbage = runtime.wait(runtime.invoke(b"\x00not json"))
    direct = runtime.wait(runtime.invoke({"key1": "value1"}))
    after = runtime.wait(runtime.invoke(event("function-url", chat())))

    for outcome in (garbage, direct):
        assert outcome.kind == "error"
        assert outcome.headers["lambda-runtime-function-error-type"] == "Edgerelay.InvalidEvent"
        assert outcome.error["errorType"] == "Edgerelay.InvalidEvent"
        assert outcome.error["errorMessage"]
    assert after.kind == "response" and after.prelude["statusCode"] == 200


def test_stops_the_upstream_and_ends_cleanly_before_the_deadline(runtime, upstream, start_loop):
    chunks = openai_chunks()
    # Lock-step and never released: the upstream sends one event, then waits for ever.
    upstream.handler = lambda seen: Reply(200, SSE, chunks, lockstep=True)
    start_loop({**upstream_env(upstream), "EDGERELAY_DEADLINE_MARGIN_MS": "3000"})
    runtime.wait_polling()  # the process is up: the whole budget is the loop's own

    invocation = runtime.invoke(event("function-url", chat("openai/gpt-4.1-mini")), deadline_in=4.0)
    outcome = runtime.wait(invocation)
    ended_wall = time.time()

    assert outcome.clean_end and outcome.trailers == {}  # a clean end, not a failure
    assert outcome.prelude["statusCode"] == 200
    assert outcome.body.startswith(chunks[0])
    error = json.loads(outcome.body[len(chunks[0]) + len(b"data: ") :])["error"]
    assert error["code"] == "timeout"
    assert ended_wall * 1000 < invocation.deadline_ms  # Lambda would have killed it after
    assert upstream.cancelled.wait(WAIT)  # the upstream request was really stopped


def test_ten_invocations_in_a_row_on_one_process(runtime, upstream, start_loop):
    chunks = openai_chunks(3)
    upstream.handler = lambda seen: Reply(200, SSE, chunks)
    process = start_loop(upstream_env(upstream))

    outcomes = []
    for i in range(10):
        kind = ("function-url", "rest-api-v1")[i % 2]
        model = "openai/gpt-4.1-mini" if i % 3 else "mock/echo"
        outcomes.append(runtime.wait(runtime.invoke(event(kind, chat(model, f"turn {i}")))))

    assert process.process.poll() is None  # still the same, warm process
    for i, outcome in enumerate(outcomes):
        assert outcome.prelude["statusCode"] == 200 and outcome.clean_end
        if i % 3:
            assert outcome.body == b"".join(chunks)
        else:
            assert outcome.body.endswith(b"data: [DONE]\n\n")
            assert f'"content":" {i}"'.encode() in outcome.body
    assert len(upstream.seen) == 6
    runtime.wait_polling(11)  # and it asks for the next one


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("EDGERELAY_MAX_STREAM_BYTES", "sk-proj-pasted-in-the-wrong-box"),
        ("EDGERELAY_MAX_STREAM_SECONDS", "sk-ant-pasted-in-the-wrong-box"),
        ("OPENAI_BASE_URL", "ftp://example.invalid"),
    ],
)
def test_a_bad_setting_is_reported_to_init_error_by_name(runtime, start_loop, setting, value):
    process = start_loop({setting: value, "OPENAI_API_KEY": "sk-never-logged"})

    assert process.wait_exit() == 1
    assert runtime.init_error_seen.is_set()
    headers, document = runtime.init_errors[0]
    assert headers["lambda-runtime-function-error-type"] == "Edgerelay.ConfigError"
    assert document["errorType"] == "Edgerelay.ConfigError"
    assert setting in document["errorMessage"]
    reported = json.dumps(document) + process.output()
    assert "sk-never-logged" not in reported
    assert "pasted-in-the-wrong-box" not in reported  # a bad value is never repeated
    assert runtime.next_calls == 0


def test_the_wrapper_runs_the_original_command_outside_lambda():
    done = subprocess.run(
        [str(WRAPPER), sys.executable, "-c", "print('managed runtime')"],
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        timeout=WAIT,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.strip() == b"managed runtime"
