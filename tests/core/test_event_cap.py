"""EDGERELAY_MAX_EVENT_BYTES: what the SSE parser holds for one event is bounded, and a
translated stream whose upstream sends a larger event ends with the stream's terminal error."""

from __future__ import annotations

import json

import pytest

from edgerelay.core.observer import StreamEnd, StreamHook, StreamObserver, events
from edgerelay.core.sse import EventTooLarge, SSEParser
from tests.core.gateway_helpers import call, make_gateway
from tests.core.test_observer import ENV, SSE, send
from tests.support.fake_fetch import FakeResponse
from tests.support.splits import random_splits

CHAT = {
    "model": "anthropic/claude-x",
    "stream": True,
    "messages": [{"role": "user", "content": "x"}],
}


@pytest.mark.parametrize("seed", range(20))
def test_an_endless_line_raises_once_past_the_limit_however_split(seed):
    parser = SSEParser(max_event_bytes=100)
    with pytest.raises(EventTooLarge):
        for piece in random_splits(b"data: " + b"x" * 500, seed):
            parser.feed(piece)


def test_many_data_lines_of_one_event_count_together():
    parser = SSEParser(max_event_bytes=100)
    with pytest.raises(EventTooLarge):
        parser.feed(b"data: " + b"y" * 60 + b"\n" + b"data: " + b"y" * 60 + b"\n")


@pytest.mark.parametrize("seed", range(20))
def test_events_within_the_limit_parse_as_without_it(seed):
    stream = b"".join(b"event: e\ndata: " + b"z" * 80 + b"\n\n" for _ in range(20))
    bounded, unbounded = SSEParser(max_event_bytes=100), SSEParser()
    got = [e for piece in random_splits(stream, seed) for e in bounded.feed(piece)]
    assert got == unbounded.feed(stream) and len(got) == 20


def anthropic_stream(huge: int) -> list[bytes]:
    start = {
        "type": "message_start",
        "message": {"id": "msg_1", "model": "claude-x", "usage": {"input_tokens": 1}},
    }
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta"}}
    return [
        b"event: message_start\ndata: " + json.dumps(start).encode() + b"\n\n",
        b'event: content_block_start\ndata: {"type":"content_block_start","index":0,'
        b'"content_block":{"type":"text","text":""}}\n\n',
        b"event: content_block_delta\ndata: " + json.dumps(delta).encode()[:-2],
        *[b"A" * 1000] * huge,  # one endless line, never finished
    ]


def test_a_translated_stream_with_an_oversized_event_ends_with_the_terminal_error():
    answer = FakeResponse(200, {"content-type": "text/event-stream"}, anthropic_stream(100))
    env = {"ANTHROPIC_API_KEY": "sk-ant-up", "EDGERELAY_MAX_EVENT_BYTES": "8192"}
    gateway, _ = make_gateway(lambda request: answer, env)
    response, chunks = call(gateway, body=CHAT)
    assert response.status == 200
    last = b"".join(chunks).rstrip(b"\n").split(b"\n\n")[-1]
    error = json.loads(last.removeprefix(b"data: "))["error"]
    assert error["code"] == "event_too_large"
    assert "EDGERELAY_MAX_EVENT_BYTES" in error["message"]
    assert answer.read_chunks < 20  # reading stopped at the limit, not at the end
    assert answer.closed
    assert response.failure is not None  # Lambda's loop flags it out of band too


# --- the stream observer: every protocol, every route ---------------------------------------

# One event of each protocol, whole, then the start of one that never ends.
OVERSIZED = {
    "chat": (b'data: {"choices":[{"index":0,"delta":{"content":"Hi"}}]}\n\n', b'data: {"x":"'),
    "responses": (
        b'event: response.created\ndata: {"type":"response.created","sequence_number":0,'
        b'"response":{"id":"resp_1","object":"response"}}\n\n',
        b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","d":"',
    ),
    "anthropic": (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1"}}\n\n',
        b'event: content_block_delta\ndata: {"type":"content_block_delta","x":"',
    ),
    "gemini": (
        b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}\r\n\r\n',
        b'data: {"',
    ),
    "gemini-json": (b'[{"candidates":[{"content":{"parts":[{"text":"Hi"}]}}]}', b',{"x":"'),
}


def oversized(protocol: str, filler: int) -> list[bytes]:
    first, start = OVERSIZED[protocol]
    return [first, start, *[b"A" * 1000] * filler]


def terminal_error(protocol: str, body: bytes) -> dict:
    """The error object of the terminal error event that ends ``body``."""
    if protocol == "gemini-json":
        return json.loads(body)[-1]["error"]
    last = events(body)[-1]
    data = json.loads(last.data)
    if protocol == "responses":
        assert data["type"] == "response.failed" and data["response"]["status"] == "failed"
        return data["response"]["error"]
    if protocol == "anthropic":
        assert last.event == "error" and data["type"] == "error"
    return data["error"]


class Ends(StreamHook):
    def __init__(self) -> None:
        self.ends: list[StreamEnd] = []

    def on_end(self, end: StreamEnd) -> None:
        self.ends.append(end)


@pytest.mark.parametrize("protocol", list(OVERSIZED))
def test_the_observer_ends_a_stream_whose_event_passes_the_limit(protocol):
    hook = Ends()
    observer = StreamObserver(protocol, [hook], max_event_bytes=4096)
    out = b""
    for chunk in oversized(protocol, 10):
        out += observer.feed(chunk)
        if observer.ended is not None:
            break
    first, _ = OVERSIZED[protocol]
    assert out.startswith(first)  # whole events before it went out
    assert b"AAAA" not in out  # the oversized event did not
    error = terminal_error(protocol, out)
    assert "EDGERELAY_MAX_EVENT_BYTES" in error["message"]
    if protocol == "chat":  # the other shapes have no string code (or a closed list of them)
        assert error["code"] == "event_too_large"
    assert observer.failure is not None and observer.failure.code == "event_too_large"
    assert [end.reason for end in hook.ends] == ["cut"]
    assert observer.feed(b"\n\n") == b""  # nothing follows the error


@pytest.mark.parametrize("protocol", list(OVERSIZED))
def test_events_within_the_limit_pass_the_observer_unchanged(protocol):
    from tests.core.test_observer import COMPLETE

    bounded = StreamObserver(protocol, max_event_bytes=200)  # each event holds 69 to 172
    data = COMPLETE[protocol]
    out = b"".join(bounded.feed(data[i : i + 7]) for i in range(0, len(data), 7))
    assert out + bounded.finish() == data
    assert bounded.failure is None


# How each protocol's oversized event ends, to send it whole.
WHOLE_END = {
    "chat": b'"}\n\n',
    "responses": b'"}\n\n',
    "anthropic": b'"}\n\n',
    "gemini": b'"}\r\n\r\n',
    "gemini-json": b'"}',
}


@pytest.mark.parametrize("glued", [False, True], ids=["own-chunk", "after-an-event"])
@pytest.mark.parametrize("protocol", list(OVERSIZED))
def test_an_oversized_event_arriving_whole_in_one_chunk_ends_the_stream(protocol, glued):
    first, start = OVERSIZED[protocol]
    whole = start + b"A" * 5000 + WHOLE_END[protocol]
    hook = Ends()
    observer = StreamObserver(protocol, [hook], max_event_bytes=4096)
    out = b"".join(observer.feed(chunk) for chunk in ([first + whole] if glued else [first, whole]))
    assert out.startswith(first)  # whole events before it went out
    assert b"AAAA" not in out  # the oversized event did not
    assert terminal_error(protocol, out)["message"].count("EDGERELAY_MAX_EVENT_BYTES") == 1
    assert observer.failure is not None and observer.failure.code == "event_too_large"
    assert [end.reason for end in hook.ends] == ["cut"]


@pytest.mark.parametrize("protocol", list(OVERSIZED))
def test_many_events_within_the_limit_in_one_large_chunk_pass_unchanged(protocol):
    from tests.core.test_observer import COMPLETE, FIRST_EVENT

    data, cut = COMPLETE[protocol], FIRST_EVENT[protocol]
    if protocol == "gemini-json":  # ten more elements like the first
        data = data[:cut] + (b"\r\n," + data[1:cut]) * 10 + data[cut:]
    else:  # ten more events like the first
        data = data[:cut] * 11 + data[cut:]
    bounded = StreamObserver(protocol, max_event_bytes=200)  # the chunk is far larger
    assert len(data) > 800
    assert bounded.feed(data) + bounded.finish() == data
    assert bounded.failure is None


NATIVE = [
    ("/openai/v1/chat/completions", "chat", SSE),
    ("/openai/v1/responses", "responses", SSE),
    ("/anthropic/v1/messages", "anthropic", SSE),
    ("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini", SSE),
    (
        "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        "gemini-json",
        {"content-type": "application/json"},
    ),
]


@pytest.mark.parametrize(("target", "protocol", "headers"), NATIVE)
def test_each_passthrough_stream_with_an_oversized_event_ends_with_its_terminal_error(
    target, protocol, headers
):
    upstream = FakeResponse(200, headers, oversized(protocol, 100))
    gateway, _ = make_gateway(
        lambda request: upstream, {**ENV, "EDGERELAY_MAX_EVENT_BYTES": "8192"}
    )
    response, out = send(gateway, target)
    assert response.status == 200
    body = b"".join(out)
    assert body.startswith(OVERSIZED[protocol][0])
    error = terminal_error(protocol, body)
    assert "EDGERELAY_MAX_EVENT_BYTES" in error["message"]
    assert response.failure is not None and response.failure.code == "event_too_large"
    assert upstream.read_chunks < 20  # reading stopped at the limit, not at the end
    assert upstream.closed


@pytest.mark.parametrize(("target", "protocol", "headers"), NATIVE)
def test_each_passthrough_route_ends_a_stream_whose_oversized_event_came_in_one_read(
    target, protocol, headers
):
    first, start = OVERSIZED[protocol]
    whole = start + b"A" * 10_000 + WHOLE_END[protocol]
    upstream = FakeResponse(200, headers, [first, whole, first])
    gateway, _ = make_gateway(
        lambda request: upstream, {**ENV, "EDGERELAY_MAX_EVENT_BYTES": "8192"}
    )
    response, out = send(gateway, target)
    body = b"".join(out)
    assert body.startswith(first) and b"AAAA" not in body
    assert terminal_error(protocol, body)["message"].count("EDGERELAY_MAX_EVENT_BYTES") == 1
    assert response.failure is not None and response.failure.code == "event_too_large"
    assert upstream.closed


def test_the_default_limit_applies_to_passthrough_streams():
    upstream = FakeResponse(200, SSE, oversized("chat", 5000))  # ~5 MB past the 4 MiB default
    gateway, _ = make_gateway(lambda request: upstream, ENV)
    _response, out = send(gateway, "/openai/v1/chat/completions")
    assert terminal_error("chat", b"".join(out))["code"] == "event_too_large"
    assert upstream.read_chunks < 4300


def gemini_translated(filler: int) -> list[bytes]:
    first = {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]}
    return [b"data: " + json.dumps(first).encode() + b"\n\n", b'data: {"', *[b"A" * 1000] * filler]


@pytest.mark.parametrize(
    ("model", "chunks"),
    [
        ("anthropic/claude-x", anthropic_stream(100)),
        ("gemini/gemini-2.5-flash", gemini_translated(100)),
    ],
)
def test_a_translated_stream_is_ended_by_the_observer(model, chunks):
    answer = FakeResponse(200, {"content-type": "text/event-stream"}, chunks)
    gateway, _ = make_gateway(lambda request: answer, {**ENV, "EDGERELAY_MAX_EVENT_BYTES": "8192"})
    response, out = call(gateway, body={**CHAT, "model": model})
    body = b"".join(out)
    assert json.loads(events(body)[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert terminal_error("chat", body)["code"] == "event_too_large"
    assert b"[DONE]" not in body
    # One terminal error, added by the observer (the translator's own error chunk is not sent).
    assert response.observer.failure is response.failure
    assert sum(1 for e in events(body) if '"error"' in e.data) == 1
    assert answer.read_chunks < 20 and answer.closed
