"""What the ASGI adapter adds to each request's log line: the bytes that went out and the time
to the first body byte, for a stream, a JSON answer and an error."""

from __future__ import annotations

import asyncio
import io
import json

from edgerelay.server.asgi import create_app
from edgerelay.server.request_log import LogSink
from tests.support.fake_fetch import FakeFetch, FakeResponse

CHUNKS = [b'data: {"choices":[]}\n\n', b'data: {"choices":[{}]}\n\n', b"data: [DONE]\n\n"]
ANSWER = b'{"id":"chatcmpl-1","choices":[]}'
ENV = {"OPENAI_API_KEY": "sk-up", "EDGERELAY_RETRIES": "0"}


def upstream(request) -> FakeResponse:
    if json.loads(request.body).get("stream"):
        return FakeResponse(200, {"content-type": "text/event-stream"}, CHUNKS)
    return FakeResponse(200, {"content-type": "application/json"}, [ANSWER])


def call(body: bytes) -> tuple[dict, list[dict]]:
    """One POST /v1/chat/completions through the app; (its log entry, what it sent)."""
    stream = io.StringIO()
    app = create_app(ENV, fetch=FakeFetch(upstream))
    app.log_sink = LogSink("all", stream)
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 5),
    }
    incoming = iter([{"type": "http.request", "body": body, "more_body": False}])
    sent: list[dict] = []

    async def receive():
        message = next(incoming, None)
        if message is None:
            await asyncio.Event().wait()  # the client is still there: nothing more comes
        return message

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    (line,) = stream.getvalue().splitlines()
    return json.loads(line), sent


def chat(stream: bool) -> bytes:
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    return json.dumps(body).encode()


def body_bytes(sent: list[dict]) -> bytes:
    return b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_streamed_answer_logs_every_byte_sent_and_its_first_byte_time():
    entry, sent = call(chat(stream=True))
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 200
    assert body_bytes(sent) == b"".join(CHUNKS)
    assert entry["status"] == 200
    assert entry["bytes_out"] == len(b"".join(CHUNKS))
    assert 0 <= entry["ttfb_ms"] <= entry["duration_ms"]


def test_a_json_answer_logs_its_bytes_and_first_byte_time():
    entry, sent = call(chat(stream=False))
    assert body_bytes(sent) == ANSWER
    assert entry["bytes_out"] == len(ANSWER)
    assert 0 <= entry["ttfb_ms"] <= entry["duration_ms"]


def test_an_error_answer_is_logged_with_its_bytes():
    entry, sent = call(b"{not json")
    assert entry["status"] == 400 == sent[0]["status"]
    assert entry["bytes_out"] == len(body_bytes(sent)) > 0
    assert entry["ttfb_ms"] is not None
