"""Gemini ``streamGenerateContent?alt=sse`` streams as OpenAI chunks: exact bytes, whatever the
byte boundaries the body arrives in."""

import itertools
import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerelay.core import load_config
from edgerelay.core.errors import GatewayError
from edgerelay.core.providers import gemini
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.routing import route_model
from edgerelay.core.safejson import MAX_DEPTH, dumps
from tests.core.gateway_helpers import NOW, call, make_gateway
from tests.support import shared_fixtures
from tests.support.fake_fetch import FakeResponse, split_every
from tests.support.splits import random_splits

ROUTE = route_model("gemini-2.5-flash", load_config({}))
CREATED = int(NOW)


def translator(include_usage=True):
    counter = itertools.count(1)
    ctx = ChatContext("chatcmpl-local", CREATED, lambda: f"id{next(counter)}", include_usage)
    return gemini.stream_translator(ROUTE, ctx)


def run(pieces, include_usage=True) -> bytes:
    t = translator(include_usage)
    return b"".join(t.feed(p) for p in pieces) + t.finish()


def frame(parts=None, finish=None, usage=None, **extra) -> bytes:
    """One Gemini frame as Google sends it: `", "`-style JSON, raw UTF-8, CRLF framing."""
    candidate = {"content": {"parts": parts or [], "role": "model"}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    body = {"candidates": [candidate], **extra}
    if usage:
        body["usageMetadata"] = usage
    body.setdefault("modelVersion", "gemini-2.5-flash")
    body.setdefault("responseId", "resp-1")
    return b"data: " + json.dumps(body, ensure_ascii=False).encode() + b"\r\n\r\n"


def meta(prompt, candidates=None, thoughts=None):
    out = {"promptTokenCount": prompt, "totalTokenCount": prompt + (candidates or 0)}
    if candidates is not None:
        out["candidatesTokenCount"] = candidates
    if thoughts is not None:
        out["thoughtsTokenCount"] = thoughts
    return out


def chunk(delta, finish=None, usage_on=True, id="resp-1", model="gemini-2.5-flash") -> dict:
    out = {"id": id, "object": "chat.completion.chunk", "created": CREATED, "model": model}
    out["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    if usage_on:
        out["usage"] = None
    return out


def usage_chunk(prompt, completion, reasoning=0, id="resp-1", model="gemini-2.5-flash") -> dict:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }
    return {
        "id": id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": model,
        "choices": [],
        "usage": usage,
    }


def wire(chunks, done=True) -> bytes:
    """The exact bytes expected: compact JSON in OpenAI's key order, then [DONE]."""
    out = b"".join(b"data: " + dumps(c) + b"\n\n" for c in chunks)
    return out + (b"data: [DONE]\n\n" if done else b"")


def parsed(raw: bytes) -> list:
    frames = [f[len(b"data: ") :] for f in raw.split(b"\n\n") if f]
    return [f.decode() if f == b"[DONE]" else json.loads(f) for f in frames]


ROLE = {"role": "assistant", "content": "", "refusal": None}


def call_delta(index, call_id, name, arguments, signature=None, detail_index=0):
    tool = {"index": index, "id": call_id, "type": "function"}
    tool["function"] = {"name": name, "arguments": arguments}
    delta = {"tool_calls": [tool]}
    if signature:
        delta["reasoning_details"] = [
            {
                "type": "reasoning.encrypted",
                "data": signature,
                "id": call_id,
                "format": "google-gemini-v1",
                "model": "gemini-2.5-flash",
                "index": detail_index,
            }
        ]
    return delta


# A thinking model calling tools: thought summary, text, three whole function calls over two
# frames (a signature on the first), usage on every frame changing as the stream goes on.
SIGNED = {
    "functionCall": {"name": "weather", "args": {"city": "Zürich"}},
    "thoughtSignature": "U0lH",
}
TOOL_STREAM = [
    frame([{"text": "Two cities, so two calls.", "thought": True}], usage=meta(20, 0, 8)),
    frame([{"text": "Checking Zürich and 東京…"}], usage=meta(20, 5, 8)),
    frame(
        [SIGNED, {"functionCall": {"name": "weather", "args": {"city": "東京", "units": "c"}}}],
        usage=meta(20, 15, 8),
    ),
    frame([{"functionCall": {"name": "clock", "args": {}}}], "STOP", usage=meta(20, 19, 8)),
]
TOOL_EXPECTED = [
    chunk(ROLE),
    chunk({"reasoning_content": "Two cities, so two calls."}),
    chunk({"content": "Checking Zürich and 東京…"}),
    chunk(call_delta(0, "call_id1", "weather", '{"city":"Zürich"}', "U0lH")),
    chunk(call_delta(1, "call_id2", "weather", '{"city":"東京","units":"c"}')),
    chunk(call_delta(2, "call_id3", "clock", "{}")),
    chunk({}, "tool_calls"),
    usage_chunk(20, 27, reasoning=8),
]

# A safety stop: text, then a frame holding only the finish (no content), as Gemini sends it.
SAFETY_STREAM = [
    frame([{"text": "Here is how"}], usage=meta(7, 3)),
    frame([{"text": " you would"}], usage=meta(7, 6)),
    b'data: {"candidates": [{"finishReason": "SAFETY", "index": 0, "safetyRatings": []}],'
    b' "usageMetadata": {"promptTokenCount": 7, "candidatesTokenCount": 6},'
    b' "modelVersion": "gemini-2.5-flash", "responseId": "resp-1"}\r\n\r\n',
]
SAFETY_EXPECTED = [
    chunk(ROLE),
    chunk({"content": "Here is how"}),
    chunk({"content": " you would"}),
    chunk({}, "content_filter"),
    usage_chunk(7, 6),
]


@pytest.mark.parametrize(
    ("stream", "expected"), [(TOOL_STREAM, TOOL_EXPECTED), (SAFETY_STREAM, SAFETY_EXPECTED)]
)
def test_own_streams_whole_frames_give_the_exact_openai_bytes(stream, expected):
    assert run(stream) == wire(expected)


@pytest.mark.parametrize("seed", range(30))
def test_seeded_random_splits_give_the_same_bytes(seed):
    rng = random.Random(seed)
    for stream, expected in [(TOOL_STREAM, TOOL_EXPECTED), (SAFETY_STREAM, SAFETY_EXPECTED)]:
        assert run(random_splits(b"".join(stream), rng)) == wire(expected)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_split_gives_the_same_bytes(data):
    raw = b"".join(TOOL_STREAM)
    cuts = data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=40, unique=True))
    cuts.sort()
    pieces = [raw[a:b] for a, b in zip([0, *cuts], [*cuts, len(raw)], strict=True)]
    assert run(pieces) == wire(TOOL_EXPECTED)


def test_byte_by_byte_and_every_frame_gives_output_at_once():
    raw = b"".join(TOOL_STREAM)
    assert run([raw[i : i + 1] for i in range(len(raw))]) == wire(TOOL_EXPECTED)
    t = translator()
    for f in TOOL_STREAM:  # lock-step: nothing is held back waiting for a later frame
        assert t.feed(f).startswith(b"data: {")


def test_without_include_usage_there_is_no_usage_anywhere():
    expected = [
        chunk(c["choices"][0]["delta"], c["choices"][0]["finish_reason"], False)
        for c in TOOL_EXPECTED[:-1]
    ]
    assert run(TOOL_STREAM, include_usage=False) == wire(expected)


def test_usage_is_reported_once_from_the_last_frame_and_frames_after_the_finish_add_nothing():
    late = frame([{"text": "late text"}], usage=meta(20, 30, 8))
    out = parsed(run([*TOOL_STREAM, late]))
    with_usage = [c for c in out if isinstance(c, dict) and c.get("usage")]
    assert len(with_usage) == 1
    assert with_usage[0]["usage"]["completion_tokens"] == 38
    assert all("late" not in json.dumps(c) for c in out)


def test_ids_and_model_fall_back_to_ours():
    raw = b'data: {"candidates": [{"content": {"parts": [{"text": "x"}]}, "finishReason": "MAX_TOKENS"}]}\r\n\r\n'  # noqa: E501
    kw = {"id": "chatcmpl-local", "model": "gemini-2.5-flash"}
    expected = [chunk(ROLE, **kw), chunk({"content": "x"}, **kw), chunk({}, "length", **kw)]
    assert run([raw]) == wire([*expected, usage_chunk(0, 0, **kw)])


def test_a_blocked_prompt_is_a_content_filter_finish():
    raw = b'data: {"promptFeedback": {"blockReason": "SAFETY"}, "usageMetadata": {"promptTokenCount": 4}, "responseId": "resp-1", "modelVersion": "gemini-2.5-flash"}\r\n\r\n'  # noqa: E501
    assert run([raw]) == wire([chunk(ROLE), chunk({}, "content_filter"), usage_chunk(4, 0)])


def error_of(raw: bytes) -> dict:
    last = parsed(raw)[-1]
    assert isinstance(last, dict), "the stream must end in an error frame, not [DONE]"
    return last["error"]


def test_a_body_that_ends_before_the_finish_is_an_error_not_a_clean_end():
    out = run(TOOL_STREAM[:2])
    assert b"[DONE]" not in out
    assert "ended before the answer was finished" in error_of(out)["message"]
    assert error_of(run([]))["type"] == "api_error"


def test_an_error_inside_the_stream_keeps_googles_message_and_ends_the_stream():
    error = b'data: {"error": {"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}}\r\n\r\n'  # noqa: E501
    t = translator()
    out = t.feed(TOOL_STREAM[0] + error) + t.feed(TOOL_STREAM[1]) + t.finish()
    assert error_of(out) == {
        "message": "The model is overloaded.",
        "type": "api_error",
        "param": None,
        "code": "UNAVAILABLE",
    }
    assert b"Checking" not in out  # nothing after the error


def test_a_frame_that_is_not_json_or_not_geminis_shape_is_an_error():
    out = run([TOOL_STREAM[0], b"data: {oops\r\n\r\n", TOOL_STREAM[1]])
    assert "not JSON" in error_of(out)["message"]
    for odd in (b'{"candidates": ["x"]}', b'{"candidates": [{"content": {"parts": [7]}}]}'):
        out = run([TOOL_STREAM[0], b"data: " + odd + b"\r\n\r\n"])
        assert "unexpected shape" in error_of(out)["message"]


def test_frames_nested_deeper_than_the_limit_are_an_error_before_they_are_parsed():
    # Under Pyodide json.loads of ~6000 levels is a fatal stack overflow, not an exception.
    out = run([TOOL_STREAM[0], b"data: " + b"[" * 100_000 + b"\r\n\r\n", TOOL_STREAM[1]])
    assert "not JSON" in error_of(out)["message"]
    for depth, ok in ((MAX_DEPTH - 8, True), (MAX_DEPTH - 7, False)):  # 8 levels around
        args = b"[" * depth + b"]" * depth
        part = b'{"functionCall": {"name": "f", "args": {"a": ' + args + b"}}}"
        raw = b'data: {"candidates": [{"content": {"parts": [' + part
        raw += b']}, "finishReason": "STOP"}]}\r\n\r\n'
        last = parsed(run([raw]))[-1]
        assert last == "[DONE]" if ok else "not JSON" in last["error"]["message"]


def test_usage_that_is_not_counts_is_zero_and_never_breaks_the_end():
    for usage_meta in ([1], "x", {"promptTokenCount": None, "candidatesTokenCount": "3"}):
        body = frame([{"text": "ok"}], "STOP", usage=usage_meta)
        out = parsed(run([body, b'data: {"usageMetadata": [2]}\r\n\r\n', b"data: null\r\n\r\n"]))
        assert out[-1] == "[DONE]"
        assert out[-2]["usage"]["total_tokens"] == 0


def test_fail_after_a_cut_sends_one_error_frame_and_nothing_more():
    t = translator()
    t.feed(TOOL_STREAM[0])
    out = t.fail(GatewayError(502, "The upstream stream broke off: reset"))
    assert error_of(out)["message"] == "The upstream stream broke off: reset"
    assert t.finish() == b"" and t.fail(GatewayError(502, "again")) == b""


def test_a_break_after_the_finish_frame_ends_normally():
    # Gemini has no terminator and the finish frame is its last: nothing was lost.
    t = translator()
    out = b"".join(t.feed(f) for f in TOOL_STREAM)
    out += t.fail(GatewayError(502, "The upstream stream broke off: reset"))
    assert out == wire(TOOL_EXPECTED)
    assert t.finish() == b""


FIXTURES = pytest.mark.skipif(
    not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON
)


def recorded(name: str) -> bytes:
    raw = shared_fixtures.body(name)
    if name.endswith(".json"):
        # Captured without alt=sse (one JSON array); the same objects as alt=sse frames.
        raw = b"".join(b"data: " + json.dumps(o).encode() + b"\r\n\r\n" for o in json.loads(raw))
    return raw


def deltas(raw: bytes) -> list:
    return [(c["choices"][0]["delta"], c["choices"][0]["finish_reason"]) for c in parsed(raw)[:-2]]


@FIXTURES
def test_recorded_text_stream():
    out = run([recorded("gemini/stream-text-1.sse")])
    kw = {"id": "w1peaMz6INOvnvgPgYfPiQY", "model": "gemini-2.0-flash-exp"}
    expected = [
        chunk(ROLE, **kw),
        chunk({"content": "The"}, **kw),
        chunk({"content": " capital of France"}, **kw),
        chunk({"content": " is Paris.\n"}, **kw),
        chunk({}, "stop", **kw),
        usage_chunk(13, 8, **kw),  # the final frame's count, not the first frames' 15
    ]
    assert out == wire(expected)


@FIXTURES
def test_recorded_tool_streams():
    assert deltas(run([recorded("gemini/stream-tool-1.sse")])) == [
        (ROLE, None),
        (call_delta(0, "call_id1", "get_capital", '{"country":"France"}'), None),
        ({}, "tool_calls"),
    ]
    # gemini-3: the call with its signature, then a frame with empty text and the STOP.
    raw = recorded("gemini/stream-tool-2.sse")
    signature = json.loads(raw.split(b"\r\n")[0][6:])["candidates"][0]["content"]["parts"][0]
    out = run([raw])
    assert deltas(out) == [
        (ROLE, None),
        (call_delta(0, "call_id1", "get_country", "{}", signature["thoughtSignature"]), None),
        ({}, "tool_calls"),
    ]
    assert parsed(out)[-2]["usage"]["completion_tokens_details"] == {"reasoning_tokens": 202}


@FIXTURES
def test_recorded_thinking_streams():
    raw = recorded("gemini/stream-jsonarray-text-1.json")
    got = deltas(run([raw]))
    assert got[0] == (ROLE, None)
    assert got[1][0]["reasoning_content"].startswith("**Considering the Constraint**")
    assert got[2] == ({"content": "Scoop"}, None)
    (detail,) = got[3][0]["reasoning_details"]  # the signature on the empty last text part
    assert (detail["id"], detail["format"], detail["index"]) == (None, "google-gemini-v1", 0)
    assert got[3][0].keys() == {"reasoning_details"}
    assert got[4] == ({}, "stop")
    got = deltas(run([recorded("gemini/stream-jsonarray-tool-1.json")]))
    assert got[1][0].keys() == {"reasoning_content"}
    assert got[2][0]["tool_calls"][0]["function"] == {
        "name": "pelican_name_generator",
        "arguments": "{}",
    }
    assert got[2][0]["reasoning_details"][0]["id"] == "call_id1"
    assert got[3] == ({}, "tool_calls")


@FIXTURES
@pytest.mark.parametrize("seed", range(10))
def test_recorded_streams_in_random_splits(seed):
    rng = random.Random(seed)
    for name in shared_fixtures.names("gemini", "stream-"):
        raw = recorded(name)
        assert run(random_splits(raw, rng)) == run([raw]), name


ENV = {"GEMINI_API_KEY": "gk-secret", "GEMINI_BASE_URL": "https://gemini.test"}
CHAT = {
    "model": "gemini-2.5-flash",
    "messages": [{"role": "user", "content": "weather?"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}
SSE = {"content-type": "text/event-stream", "content-disposition": "attachment"}


def test_through_the_gateway():
    upstream = split_every(b"".join(TOOL_STREAM), 7)
    gateway, fetch = make_gateway(lambda request: FakeResponse(200, SSE, upstream), ENV)
    response, chunks = call(gateway, body=CHAT)
    assert response.status == 200
    assert dict(response.headers)["content-type"].startswith("text/event-stream")
    # The gateway took id1 for the completion id, so the tool call ids start at id2.
    expected = wire(TOOL_EXPECTED)
    for n in (3, 2, 1):
        expected = expected.replace(b"call_id%d" % n, b"call_id%d" % (n + 1))
    assert b"".join(chunks) == expected
    (request,) = fetch.requests
    assert (
        request.url
        == "https://gemini.test/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
    )
    assert fetch.responses[0].closed


def test_through_the_gateway_a_cut_stream_ends_in_an_error_frame():
    reply = FakeResponse(200, SSE, TOOL_STREAM, error_after=2)
    gateway, fetch = make_gateway(lambda request: reply, ENV)
    _, chunks = call(gateway, body=CHAT)
    out = b"".join(chunks)
    assert "broke off" in error_of(out)["message"]
    assert b"Checking" in out and b"[DONE]" not in out
    assert fetch.responses[0].closed
