"""The total timeout bounds the whole exchange, the body included: a stream still running when
it passes ends with the route's terminal error and the upstream is closed, on the passthrough
routes, /v1/chat/completions (relayed and translated) and /v1/responses. Time is the gateway's
injected clock, moved on as the fake upstream's body is read (also run in Pyodide)."""

import json
from dataclasses import dataclass

from edgerelay.core import Gateway, Request, load_config
from tests.support import anthropic_wire as aw
from tests.support.drive import collect, drive
from tests.support.fake_fetch import FakeFetch, FakeResponse

NOW = 1_760_000_000.0
KEYS = {"OPENAI_API_KEY": "sk-x", "ANTHROPIC_API_KEY": "a-x"}


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@dataclass
class Slow(FakeResponse):
    """Each chunk comes ``step`` seconds after the one before (on the test's clock)."""

    clock: Clock | None = None
    step: float = 0.0

    async def aiter_bytes(self):
        for chunk in self.chunks:
            self.clock.now += self.step
            self.read_chunks += 1
            yield chunk


def slow(chunks, step, headers=None):
    """The upstream's answer: ``chunks``, each ``step`` seconds after the one before."""
    return lambda clock: Slow(200, headers or SSE, chunks, clock=clock, step=step)


def gateway(answer, **env):
    clock = Clock()
    fetch = FakeFetch(lambda request: answer(clock))
    config = load_config({**KEYS, **env})
    made = Gateway(config, fetch, clock=clock, new_id=lambda: "id", random=lambda: 0.5)
    return made, fetch


def send(gw, path, body):
    request = Request("POST", path, "", {"content-type": "application/json"}, json.dumps(body))
    request.body = json.dumps(body).encode()
    response = drive(gw.handle(request))
    chunks = collect(response.stream) if response.stream is not None else [response.body]
    drive(response.aclose())
    return response, b"".join(chunks)


def chat_chunk(text):
    payload = {"id": "c", "object": "chat.completion.chunk", "choices": []}
    payload["choices"] = [{"index": 0, "delta": {"content": text}, "finish_reason": None}]
    return f"data: {json.dumps(payload)}\n\n".encode()


SSE = {"content-type": "text/event-stream"}
CHAT = {"model": "gpt-4.1-mini", "stream": True, "messages": [{"role": "user", "content": "Hi"}]}


def openai_stream(step):
    chunks = [chat_chunk("one"), chat_chunk("two"), chat_chunk("three"), b"data: [DONE]\n\n"]
    return slow(chunks, step)


def frames(body):
    return [f[6:] for f in body.split(b"\n\n") if f.startswith(b"data: ")]


def test_a_passthrough_stream_past_the_total_timeout_ends_with_the_terminal_error():
    gw, fetch = gateway(openai_stream(400), EDGERELAY_TOTAL_TIMEOUT="1000")
    response, body = send(gw, "/openai/v1/chat/completions", CHAT)
    assert response.status == 200
    data = frames(body)
    assert [json.loads(d)["choices"][0]["delta"]["content"] for d in data[:2]] == ["one", "two"]
    assert "total timeout" in json.loads(data[-1])["error"]["message"]  # third came at 1200 s
    assert b"[DONE]" not in body and len(data) == 3
    assert fetch.responses[0].closed
    assert fetch.requests[0].total_timeout == 1000.0


def test_a_stream_within_the_total_timeout_is_untouched():
    gw, fetch = gateway(openai_stream(100), EDGERELAY_TOTAL_TIMEOUT="1000")
    _, body = send(gw, "/openai/v1/chat/completions", CHAT)
    assert body.endswith(b"data: [DONE]\n\n") and b'"error"' not in body
    assert fetch.responses[0].read_chunks == 4


def test_a_relayed_chat_stream_past_it_ends_with_an_error_chunk():
    gw, fetch = gateway(openai_stream(400), EDGERELAY_TOTAL_TIMEOUT="1000")
    response, body = send(gw, "/v1/chat/completions", CHAT)
    assert response.status == 200
    data = frames(body)
    assert "total timeout" in json.loads(data[-1])["error"]["message"]
    assert b"[DONE]" not in body
    assert fetch.responses[0].closed


def test_a_translated_stream_past_it_ends_with_an_error_chunk_never_a_retry():
    events = [aw.event(e) for e in [aw.message_start(), *aw.text_block(0, "Hel", "lo", "!")]]
    answer = slow(events, 300)
    gw, fetch = gateway(answer, EDGERELAY_TOTAL_TIMEOUT="1000")
    body = dict(CHAT, model="anthropic/claude-x")
    response, out = send(gw, "/v1/chat/completions", body)
    assert response.status == 200
    data = frames(out)
    assert json.loads(data[1])["choices"][0]["delta"]["content"] == "Hel"
    assert "total timeout" in json.loads(data[-1])["error"]["message"]
    assert b"[DONE]" not in out
    assert len(fetch.requests) == 1 and fetch.responses[0].closed


def test_an_anthropic_passthrough_stream_ends_in_anthropics_shape():
    events = [aw.event(e) for e in [aw.message_start(), *aw.text_block(0, "Hel", "lo", "!")]]
    answer = slow(events, 300)
    gw, fetch = gateway(answer, EDGERELAY_TOTAL_TIMEOUT="1000")
    body = {"model": "claude-x", "max_tokens": 5, "stream": True, "messages": []}
    response, out = send(gw, "/anthropic/v1/messages", body)
    assert response.status == 200
    last = out.rstrip().split(b"\n\n")[-1]
    assert last.startswith(b"event: error\n")
    assert "total timeout" in json.loads(last.split(b"data: ", 1)[1])["error"]["message"]
    assert fetch.responses[0].closed


def test_a_json_answer_read_past_it_is_a_504_not_a_late_answer():
    whole = json.dumps({"id": "m", "type": "message", "content": []}).encode()
    halves = [whole[:10], whole[10:]]
    answer = slow(halves, 600, {"content-type": "application/json"})
    gw, fetch = gateway(answer, EDGERELAY_TOTAL_TIMEOUT="1000")
    body = dict(CHAT, model="anthropic/claude-x", stream=False)
    response, out = send(gw, "/v1/chat/completions", body)
    assert response.status == 504
    assert json.loads(out)["error"]["code"] == "timeout"
    assert len(fetch.requests) == 1  # no time left for another attempt
    assert fetch.responses[0].closed


def test_a_responses_stream_from_openai_ends_with_response_failed():
    created = (
        b'event: response.created\ndata: {"type":"response.created","response":{"id":"r"}}\n\n'
    )
    delta = (
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
        b'"delta":"x"}\n\n'
    )
    answer = slow([created, delta, delta], 400)
    gw, fetch = gateway(answer, EDGERELAY_TOTAL_TIMEOUT="1000")
    response, out = send(gw, "/v1/responses", {"model": "gpt-4.1", "input": "hi", "stream": True})
    assert response.status == 200
    assert b"response.failed" in out.rstrip().split(b"\n\n")[-1]
    assert b"total timeout" in out
    assert fetch.responses[0].closed
