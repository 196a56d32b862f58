"""The Worker under the real local runtime (workerd with the Python runtime, via wrangler dev):
what the Pyodide-in-Node tests cannot show — the real request and stream plumbing, the vendored
SDK as the runtime loads it, secrets as the runtime hands them over, loopback fetches leaving
workerd. Streaming is proven lock-step, as elsewhere: the upstream sends chunk k+1 only after
the test has read chunk k from the Worker."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.support.loopback import WAIT, FakeUpstream, Reply, sse_frames

pytestmark = pytest.mark.workerd

CANARY_KEY = "sk-canary-provider-key-7f3a"
SSE = {"content-type": "text/event-stream; charset=utf-8"}


def chunk(delta: dict, finish: str | None = None) -> bytes:
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1,
        "model": "gpt-x",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


def chat(model: str, content: str = "hello from the real runtime", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


@pytest.fixture(scope="module")
def upstream():
    with FakeUpstream() as fake:
        yield fake


@pytest.fixture(scope="module")
def worker(start_worker, upstream):
    return start_worker(
        vars={"OPENAI_BASE_URL": upstream.url + "/v1", "EDGERELAY_ALLOW_ANONYMOUS": "true"},
        secrets={"OPENAI_API_KEY": CANARY_KEY},
    )


def test_health(worker):
    response = httpx.get(worker.url + "/healthz", timeout=WAIT)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_mock_echo_streams_through_the_runtime(worker):
    request = chat("mock/echo", "one two three", stream=True)
    with httpx.stream("POST", worker.url + "/v1/chat/completions", json=request) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = list(sse_frames(response))
    text = "".join(
        json.loads(f.removeprefix(b"data: "))["choices"][0]["delta"].get("content") or ""
        for f in frames
        if f != b"data: [DONE]"
    )
    assert text == "one two three"
    assert frames[-1] == b"data: [DONE]"


def test_a_loopback_upstream_streams_lock_step_with_the_secret_key(worker, upstream):
    words = ["Real", " runtime", " streams", "."]
    frames = [chunk({"role": "assistant", "content": words[0]})]
    frames += [chunk({"content": w}) for w in words[1:]] + [chunk({}, "stop"), b"data: [DONE]\n\n"]
    upstream.handler = lambda seen: Reply(200, SSE, frames, lockstep=True)
    before = len(upstream.seen)
    shown = []
    with httpx.stream(
        "POST", worker.url + "/v1/chat/completions", json=chat("gpt-x", stream=True), timeout=WAIT
    ) as response:
        assert response.status_code == 200
        for frame in sse_frames(response):
            if frame != b"data: [DONE]":
                delta = json.loads(frame.removeprefix(b"data: "))["choices"][0]["delta"]
                shown.append(delta.get("content") or "")
            upstream.release()  # chunk k+1 leaves only now that chunk k arrived
    assert "".join(shown) == "Real runtime streams."
    seen = upstream.seen[before]
    assert seen.path == "/v1/chat/completions"
    assert seen.headers["Authorization"] == f"Bearer {CANARY_KEY}"  # the secret reached it
    assert CANARY_KEY not in worker.log()
