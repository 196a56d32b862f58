"""EDGERELAY_MAX_EVENT_BYTES: what the SSE parser holds for one event is bounded, and a
translated stream whose upstream sends a larger event ends with the stream's terminal error."""

from __future__ import annotations

import json

import pytest

from edgerelay.core.sse import EventTooLarge, SSEParser
from tests.core.gateway_helpers import call, make_gateway
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
