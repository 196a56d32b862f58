"""The stream observer: event boundaries, each protocol's end marker, and the terminal error in
the protocol of the route, fed in every split; then the gateway's routes cut mid-way."""

from __future__ import annotations

import json

import pytest

from edgerelay.core.errors import GatewayError
from edgerelay.core.framing import EventAligner, JsonArrayFramer
from edgerelay.core.observer import StreamEnd, StreamHook, StreamObserver, events
from tests.core.gateway_helpers import call, make_gateway
from tests.support.fake_fetch import FakeResponse, split_every

BROKEN = GatewayError(502, "The upstream stream broke off: connection reset", code="bad_gateway")

CHAT = b"".join(
    b'data: {"id":"c","choices":[{"index":0,"delta":{"content":"' + w + b'"}}]}\n\n'
    for w in (b"Hi", b" there")
)
DONE = b"data: [DONE]\n\n"


def anthropic(kind: str, **fields) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


ANTHROPIC = (
    anthropic("message_start", message={"id": "msg_1", "content": []})
    + anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"})
    + anthropic("message_stop")
)
RESPONSES = b"".join(
    f"event: {kind}\ndata: {json.dumps({'type': kind, 'sequence_number': n, **extra})}\n\n".encode()
    for n, (kind, extra) in enumerate(
        [
            ("response.created", {"response": {"id": "resp_1", "object": "response"}}),
            ("response.output_text.delta", {"delta": "Hi"}),
            ("response.completed", {"response": {"id": "resp_1", "status": "completed"}}),
        ]
    )
)
GEMINI_FRAMES = [
    {"candidates": [{"content": {"parts": [{"text": "Hi"}], "role": "model"}}]},
    {"candidates": [{"content": {"parts": [{"text": "!"}]}, "finishReason": "STOP"}]},
]
GEMINI_SSE = b"".join(b"data: " + json.dumps(f).encode() + b"\r\n\r\n" for f in GEMINI_FRAMES)
GEMINI_JSON = b"[" + b"\r\n,".join(json.dumps(f, indent=2).encode() for f in GEMINI_FRAMES) + b"]"

COMPLETE = {
    "chat": CHAT + DONE,
    "responses": RESPONSES,
    "anthropic": ANTHROPIC,
    "gemini": GEMINI_SSE,
    "gemini-json": GEMINI_JSON,
}
# Where each stream is cut: after its first event (the answer has begun, not ended).
FIRST_EVENT = {
    "chat": CHAT.index(b"\n\n") + 2,
    "responses": RESPONSES.index(b"\n\n") + 2,
    "anthropic": ANTHROPIC.index(b"\n\n") + 2,
    "gemini": GEMINI_SSE.index(b"\r\n\r\n") + 4,
    "gemini-json": GEMINI_JSON.index(b"\r\n,"),
}


class Recorder(StreamHook):
    def __init__(self) -> None:
        self.seen = b""
        self.ends: list[StreamEnd] = []

    def on_events(self, data: bytes) -> None:
        self.seen += data

    def on_end(self, end: StreamEnd) -> None:
        self.ends.append(end)


def relay(protocol, chunks, *, broken=False, hooks=()):
    observer = StreamObserver(protocol, hooks)
    out = [observer.feed(chunk) for chunk in chunks]
    out.append(observer.fail(BROKEN, "broken") if broken else observer.finish())
    return observer, [piece for piece in out if piece]


@pytest.mark.parametrize("protocol", list(COMPLETE))
@pytest.mark.parametrize("size", [1, 3, 7, 64, 10_000])
def test_a_complete_stream_passes_unchanged_in_any_split(protocol, size):
    recorder = Recorder()
    observer, out = relay(protocol, split_every(COMPLETE[protocol], size), hooks=[recorder])
    assert b"".join(out) == COMPLETE[protocol]
    assert observer.failure is None
    assert recorder.seen == COMPLETE[protocol]
    assert recorder.ends == [StreamEnd("complete", None, len(COMPLETE[protocol]))]


@pytest.mark.parametrize("protocol", ["chat", "responses", "anthropic", "gemini"])
@pytest.mark.parametrize("size", [1, 5, 10_000])
def test_sse_output_is_cut_on_event_boundaries(protocol, size):
    _, out = relay(protocol, split_every(COMPLETE[protocol], size))
    for piece in out:
        assert piece.endswith((b"\n\n", b"\r\n\r\n")), piece


def cut_mid_way(protocol: str) -> list[bytes]:
    """The first event whole, then half of the second (the rest never comes)."""
    data, first = COMPLETE[protocol], FIRST_EVENT[protocol]
    return [data[:first], data[first : first + 12]]


def test_chat_cut_mid_event_drops_the_half_event_and_ends_with_an_error_chunk():
    observer, out = relay("chat", cut_mid_way("chat"), broken=True)
    body = b"".join(out)
    assert body.startswith(CHAT[: FIRST_EVENT["chat"]])
    parsed = events(body)
    assert json.loads(parsed[0].data)["choices"]
    assert json.loads(parsed[-1].data)["error"]["code"] == "bad_gateway"
    assert b"[DONE]" not in body
    assert observer.failure is BROKEN


def test_responses_cut_ends_with_response_failed_carrying_the_error():
    _, out = relay("responses", cut_mid_way("responses"), broken=True)
    last = events(b"".join(out))[-1]
    assert last.event == "response.failed"
    failed = json.loads(last.data)
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == 1  # after the one event relayed
    assert failed["response"]["id"] == "resp_1"  # the response response.created announced
    assert failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["message"] == BROKEN.message


def test_anthropic_cut_ends_with_an_error_event_in_anthropics_shape():
    _, out = relay("anthropic", cut_mid_way("anthropic"), broken=True)
    last = events(b"".join(out))[-1]
    assert last.event == "error"
    assert json.loads(last.data) == {
        "type": "error",
        "error": {"type": "api_error", "message": BROKEN.message},
    }


def test_gemini_sse_cut_ends_with_a_google_error_object():
    _, out = relay("gemini", cut_mid_way("gemini"), broken=True)
    last = json.loads(events(b"".join(out))[-1].data)
    assert last == {"error": {"code": 502, "message": BROKEN.message, "status": "UNAVAILABLE"}}


def test_gemini_json_cut_closes_the_array_with_an_error_element():
    _, out = relay("gemini-json", cut_mid_way("gemini-json"), broken=True)
    array = json.loads(b"".join(out))  # still one valid JSON array
    assert array[0] == GEMINI_FRAMES[0]
    assert array[-1]["error"]["message"] == BROKEN.message
    assert len(array) == 2


def test_gemini_json_cut_before_any_element():
    _, out = relay("gemini-json", [b'[{"candidates": [{"content'], broken=True)
    assert json.loads(b"".join(out)) == [json.loads(BROKEN.render("gemini"))]


@pytest.mark.parametrize("protocol", list(COMPLETE))
def test_a_body_that_ends_without_its_end_marker_gets_the_terminal_error(protocol):
    data = COMPLETE[protocol][: FIRST_EVENT[protocol]]
    recorder = Recorder()
    observer, out = relay(protocol, [data], hooks=[recorder])
    assert b"".join(out).startswith(data)
    assert observer.failure is not None
    assert "ended before the answer was complete" in observer.failure.message
    assert [end.reason for end in recorder.ends] == ["unterminated"]


def test_a_chat_stream_ending_cleanly_without_done_is_an_error_never_done():
    _observer, out = relay("chat", [CHAT])
    body = b"".join(out)
    assert body.startswith(CHAT)
    assert json.loads(events(body)[-1].data)["error"]["code"] == "bad_gateway"
    assert b"[DONE]" not in body


@pytest.mark.parametrize("protocol", list(COMPLETE))
def test_a_break_after_the_end_marker_loses_nothing_and_adds_nothing(protocol):
    recorder = Recorder()
    observer, out = relay(protocol, [COMPLETE[protocol]], broken=True, hooks=[recorder])
    assert b"".join(out) == COMPLETE[protocol]
    assert observer.failure is None
    assert [end.reason for end in recorder.ends] == ["complete"]


@pytest.mark.parametrize(
    ("protocol", "error_event"),
    [
        ("chat", b'data: {"error":{"message":"overloaded","type":"server_error"}}\n\n'),
        ("anthropic", anthropic("error", error={"type": "overloaded_error", "message": "x"})),
        ("responses", b'event: error\ndata: {"type":"error","code":"x","message":"y"}\n\n'),
        ("gemini", b'data: {"error": {"code": 503, "message": "busy"}}\n\n'),
    ],
)
def test_the_upstreams_own_error_event_ends_the_stream_without_a_second_one(protocol, error_event):
    data = COMPLETE[protocol][: FIRST_EVENT[protocol]] + error_event
    recorder = Recorder()
    observer, out = relay(protocol, [data], hooks=[recorder])
    assert b"".join(out) == data
    assert observer.failure is None
    assert [end.reason for end in recorder.ends] == ["upstream_error"]


def test_words_that_look_like_end_markers_inside_content_do_not_end_the_stream():
    tricky = b'data: {"choices":[{"delta":{"content":"[DONE] \\"error\\" message_stop"}}]}\n\n'
    observer, _out = relay("chat", [tricky])
    assert observer.failure is not None  # still waiting for the real [DONE]
    anthropic_text = anthropic(
        "content_block_delta", index=0, delta={"type": "text_delta", "text": "message_stop"}
    )
    observer, _ = relay("anthropic", [anthropic_text])
    assert observer.failure is not None


@pytest.mark.parametrize("boundary", [b"\n\n", b"\r\n\r\n", b"\r\r"])
def test_the_end_marker_is_found_after_events_that_mention_it_in_one_read(boundary):
    # A scan reads the events from the first one that mentions a marker on: a look-alike in
    # an earlier event's text must not hide the real marker after it.
    tricky = b'data: {"choices":[{"delta":{"content":"[DONE] \\"error\\""}}]}'
    plain = b'data: {"choices":[{"delta":{"content":"more"}}]}'
    data = boundary.join([plain, tricky, plain, b"data: [DONE]"]) + boundary
    recorder = Recorder()
    observer, out = relay("chat", [data], hooks=[recorder])
    assert b"".join(out) == data
    assert [end.reason for end in recorder.ends] == ["complete"]
    assert observer.failure is None
    later_error = boundary.join([tricky, plain, b'data: {"error":{"message":"busy"}}']) + boundary
    recorder = Recorder()
    relay("chat", [later_error], hooks=[recorder])
    assert [end.reason for end in recorder.ends] == ["upstream_error"]


@pytest.mark.parametrize(
    ("data", "complete"),
    [
        (b"data: [DONE]\n\n", True),  # alone in its read
        (b'data: {"choices":[]}\n\ndata: [DONE]\n\n', True),  # after an event, one read
        (b": keep-alive\n\ndata: [DONE]\n\n", True),  # after a comment
        (b"event: done\ndata: [DONE]\n\n", True),  # with an event line
        (b"data:[DONE]\n\n", True),  # no space after the colon
        (b"data: [DONE]\r\n\r\n", True),  # CRLF
        (b"data: [DONE] \n\n", False),  # not the marker: a trailing space is data
        (b'data: {"choices":[]}\ndata: [DONE]\n\n', False),  # a second data line of one event
    ],
)
def test_done_is_recognised_only_as_a_whole_event(data, complete):
    recorder = Recorder()
    relay("chat", [data], hooks=[recorder])
    assert [end.reason for end in recorder.ends] == (["complete"] if complete else ["unterminated"])


def test_nothing_goes_out_after_the_terminal_error():
    observer = StreamObserver("chat")
    observer.feed(CHAT)
    assert observer.fail(BROKEN)
    assert observer.feed(DONE) == b""
    assert observer.finish() == b""
    assert observer.fail(BROKEN) == b""


def test_a_client_that_leaves_is_reported_once_as_cancelled():
    recorder = Recorder()
    observer = StreamObserver("chat", [recorder])
    observer.feed(CHAT)
    observer.close()
    observer.close()
    assert recorder.ends == [StreamEnd("cancelled", None, len(CHAT))]


def test_the_aligner_finds_a_boundary_split_between_cr_and_lf():
    aligner = EventAligner()
    assert aligner.feed(b"data: a\r\n\r") == b""
    assert aligner.feed(b"\ndata: b") == b"data: a\r\n\r\n"
    assert aligner.flush() == b"data: b"


def test_the_aligner_passes_an_oversized_event_on_and_says_it_is_open(monkeypatch):
    monkeypatch.setattr("edgerelay.core.framing.MAX_HELD", 10)
    aligner = EventAligner()
    assert aligner.feed(b"data: 0123") == b""
    assert aligner.feed(b"456789") == b"data: 0123456789"
    assert not aligner.at_boundary
    assert aligner.feed(b"\n\n") == b"\n\n"
    assert aligner.at_boundary


def test_the_json_framer_ignores_brackets_inside_strings_and_escapes():
    framer = JsonArrayFramer()
    text = b'[{"t": "a ] } \\" [ {"}, {"t": "\\\\"}]'
    out = b"".join(framer.feed(bytes([c])) for c in text)
    assert out == text
    assert framer.closed and framer.elements == 2


# --- through the gateway: each native route and a translated one, cut mid-way --------------

ENV = {
    "OPENAI_API_KEY": "sk-o",
    "ANTHROPIC_API_KEY": "sk-a",
    "GEMINI_API_KEY": "g",
    "EDGERELAY_ALLOW_ANONYMOUS": "true",
}
SSE = {"content-type": "text/event-stream"}
ROUTES = [
    ("/openai/v1/chat/completions", "chat", SSE),
    ("/openai/v1/responses", "responses", SSE),
    ("/anthropic/v1/messages", "anthropic", SSE),
    ("/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "gemini", SSE),
    (
        "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent",
        "gemini-json",
        {"content-type": "application/json; charset=UTF-8"},
    ),
]


def send(gateway, target, body=b"{}"):
    path, _, query = target.partition("?")
    from edgerelay.core import Request
    from tests.support.drive import collect, drive

    response = drive(gateway.handle(Request("POST", path, query, {}, body)))
    chunks = collect(response.stream) if response.stream is not None else None
    drive(response.aclose())
    return response, chunks


@pytest.mark.parametrize(("target", "protocol", "headers"), ROUTES)
def test_each_native_route_cut_mid_way_ends_with_its_own_terminal_error(target, protocol, headers):
    chunks = cut_mid_way(protocol)
    upstream = FakeResponse(200, headers, chunks, error_after=len(chunks))
    gateway, _fetch = make_gateway(lambda request: upstream, ENV)
    response, out = send(gateway, target)
    assert response.status == 200
    body = b"".join(out)
    _, expected = relay(protocol, chunks, broken=True)
    terminal = expected[-1]
    assert body == chunks[0] + terminal  # the half event is dropped, the error follows
    assert response.failure is not None
    assert upstream.closed


def test_a_translated_stream_cut_mid_way_ends_with_an_openai_error_chunk():
    frames = [
        anthropic("message_start", message={"id": "msg_1", "model": "c", "content": []}),
        anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""}),
        # Content first: a stream that breaks before any content is retried (test_gateway_retries).
        anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"}),
        anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": "Hi"})[:20],
    ]
    upstream = FakeResponse(200, SSE, frames, error_after=len(frames))
    gateway, _ = make_gateway(lambda request: upstream, ENV)
    chat = {
        "model": "anthropic/claude-x",
        "stream": True,
        "messages": [{"role": "user", "content": "x"}],
    }
    _response, out = call(gateway, body=chat)
    parsed = events(b"".join(out))
    assert json.loads(parsed[0].data)["choices"][0]["delta"]["role"] == "assistant"
    assert "broke off" in json.loads(parsed[-1].data)["error"]["message"]
    assert all(e.data != "[DONE]" for e in parsed)
    assert upstream.closed


def test_an_openai_chat_stream_ending_without_done_gets_an_error_chunk():
    upstream = FakeResponse(200, SSE, [CHAT])
    gateway, _ = make_gateway(lambda request: upstream, ENV)
    chat = {"model": "openai/gpt-x", "stream": True, "messages": [{"role": "user", "content": "x"}]}
    response, out = call(gateway, body=chat)
    body = b"".join(out)
    assert body.startswith(CHAT)
    assert json.loads(events(body)[-1].data)["error"]["code"] == "bad_gateway"
    assert b"[DONE]" not in body
    assert response.failure is not None


def test_hooks_from_the_gateway_see_every_relayed_stream():
    recorders: list[Recorder] = []

    def factory(protocol):
        recorders.append(Recorder())
        return recorders[-1]

    upstream = FakeResponse(200, SSE, split_every(ANTHROPIC, 9))
    gateway, _ = make_gateway(lambda request: upstream, ENV)
    gateway.stream_hooks = (factory,)
    _, out = send(gateway, "/anthropic/v1/messages")
    assert b"".join(out) == ANTHROPIC
    (recorder,) = recorders
    assert recorder.seen == ANTHROPIC
    assert [end.reason for end in recorder.ends] == ["complete"]


def test_a_non_stream_answer_has_no_observer():
    upstream = FakeResponse(200, {"content-type": "application/json"}, [b'{"ok": true}'])
    gateway, _ = make_gateway(lambda request: upstream, ENV)
    response, out = send(gateway, "/anthropic/v1/messages")
    assert response.observer is None
    assert out == [b'{"ok": true}']
