"""The Anthropic stream state machine: our own streams (from Anthropic's documented wire format)
and the real captures, fed in random splits; every split must give the same bytes."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgerelay.core.errors import GatewayError
from edgerelay.core.providers.anthropic_stream import AnthropicStream
from edgerelay.core.safejson import MAX_DEPTH, dumps
from tests.support import anthropic_wire as wire
from tests.support import shared_fixtures
from tests.support.splits import random_splits

CREATED = 1_760_000_000


def translate(pieces, include_usage=False, model="claude-x", final=True) -> bytes:
    translator = AnthropicStream(model, "chatcmpl-local", CREATED, include_usage)
    out = b"".join(translator.feed(p) for p in pieces)
    return out + translator.finish() if final else out


def chunk(delta, finish=None, msg_id=wire.MSG_ID, usage=False) -> bytes:
    body = {
        "id": msg_id,
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": wire.MODEL,
        "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    if usage:
        body["usage"] = None
    return b"data: " + dumps(body) + b"\n\n"


ROLE = {"role": "assistant", "content": "", "refusal": None}

THINKING_TOOLS = wire.stream(
    [
        wire.message_start({"input_tokens": 10, "cache_read_input_tokens": 90, "output_tokens": 1}),
        *wire.thinking_block(0, "sig-A==", "Let me ", "check both cities."),
        wire.PING,
        *wire.redacted_block(1, "ENCRYPTED=="),
        *wire.text_block(2, "Checking ", "the weather…"),
        *wire.tool_block(3, "toolu_01A", "get_weather", '{"city"', ': "Paris"}'),
        *wire.tool_block(4, "toolu_01B", "get_weather", "", '{"city": "Tōkyō 東京"}'),
        *wire.tool_block(5, "toolu_01C", "get_time"),
        *wire.message_end("tool_use", {"output_tokens": 120}),
    ]
)


def test_text_stream_is_exact_openai_chunks_with_ping_comment():
    out = translate([wire.text_stream("Hello", " world")])
    assert out == b"".join(
        [
            chunk(ROLE),
            b": ping\n\n",
            chunk({"content": "Hello"}),
            chunk({"content": " world"}),
            chunk({}, "stop"),
            b"data: [DONE]\n\n",
        ]
    )


def test_usage_null_on_each_chunk_then_a_usage_chunk_with_cache_tokens():
    events = [
        wire.message_start(
            {
                "input_tokens": 5,
                "cache_creation_input_tokens": 20,
                "cache_read_input_tokens": 100,
                "output_tokens": 1,
            }
        ),
        *wire.text_block(0, "Hi"),
        *wire.message_end("end_turn", {"output_tokens": 7}),
    ]
    out = translate([wire.stream(events)], include_usage=True)
    usage = {
        "prompt_tokens": 125,
        "completion_tokens": 7,
        "total_tokens": 132,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    head = {"id": wire.MSG_ID, "object": "chat.completion.chunk", "created": CREATED}
    usage_chunk = {**head, "model": wire.MODEL, "choices": [], "usage": usage}
    assert out == b"".join(
        [
            chunk(ROLE, usage=True),
            chunk({"content": "Hi"}, usage=True),
            chunk({}, "stop", usage=True),
            b"data: " + dumps(usage_chunk) + b"\n\n",
            b"data: [DONE]\n\n",
        ]
    )


def test_thinking_redacted_text_and_parallel_tool_calls():
    parsed = wire.frames(translate([THINKING_TOOLS]))
    assert parsed[0]["choices"][0]["delta"] == ROLE
    assert parsed[-1] == "[DONE]"
    got = wire.deltas(parsed)
    assert got[1:4] == [
        {"reasoning_content": "Let me "},
        {"reasoning_content": "check both cities."},
        {
            "reasoning_details": [
                {
                    "type": "reasoning.text",
                    "text": "Let me check both cities.",
                    "signature": "sig-A==",
                    "format": "anthropic-claude-v1",
                    "model": "claude-x",
                    "index": 0,
                }
            ]
        },
    ]
    assert got[4] == {
        "reasoning_details": [
            {
                "type": "reasoning.encrypted",
                "data": "ENCRYPTED==",
                "format": "anthropic-claude-v1",
                "model": "claude-x",
                "index": 1,
            }
        ]
    }
    assert got[5:7] == [{"content": "Checking "}, {"content": "the weather…"}]
    # Tool calls count from 0 (Anthropic's block indexes are 3, 4, 5); id and name only first.
    first = {"id": "toolu_01A", "type": "function"}
    assert got[7] == {
        "tool_calls": [{"index": 0, **first, "function": {"name": "get_weather", "arguments": ""}}]
    }
    assert got[8:10] == [
        {"tool_calls": [{"index": 0, "function": {"arguments": '{"city"'}}]},
        {"tool_calls": [{"index": 0, "function": {"arguments": ': "Paris"}'}}]},
    ]
    assert got[10]["tool_calls"][0]["index"] == 1
    assert got[11] == {
        "tool_calls": [{"index": 1, "function": {"arguments": '{"city": "Tōkyō 東京"}'}}]
    }
    assert got[12]["tool_calls"][0] == {
        "index": 2,
        "id": "toolu_01C",
        "type": "function",
        "function": {"name": "get_time", "arguments": ""},
    }
    # No input_json_delta at all: the arguments come whole as "{}", as OpenAI sends them.
    assert got[13] == {"tool_calls": [{"index": 2, "function": {"arguments": "{}"}}]}
    assert parsed[-2]["choices"][0] == {
        "index": 0,
        "delta": {},
        "logprobs": None,
        "finish_reason": "tool_calls",
    }
    whole = wire.accumulate(parsed)
    assert whole["content"] == "Checking the weather…"
    assert [json.loads(c["arguments"]) for c in whole["tool_calls"]] == [
        {"city": "Paris"},
        {"city": "Tōkyō 東京"},
        {},
    ]
    assert "content" not in got[1] and "reasoning_content" not in got[5]


REFERENCE_WITH_USAGE = translate([THINKING_TOOLS], include_usage=True)


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_every_split_gives_the_same_bytes(data):
    stream = THINKING_TOOLS
    reference = REFERENCE_WITH_USAGE
    cuts = data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=40, unique=True))
    cuts.sort()
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    assert translate(pieces, include_usage=True) == reference


def test_byte_by_byte_and_crlf_line_ends_give_the_same_output():
    reference = translate([THINKING_TOOLS])
    assert translate([THINKING_TOOLS[i : i + 1] for i in range(len(THINKING_TOOLS))]) == reference
    assert translate([THINKING_TOOLS.replace(b"\n", b"\r\n")]) == reference


@pytest.mark.parametrize(
    ("stop_reason", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
        ("model_context_window_exceeded", "length"),
        ("pause_turn", "stop"),
        ("something_new", "stop"),
    ],
)
def test_finish_reasons(stop_reason, finish):
    parsed = wire.frames(translate([wire.text_stream("x", stop_reason=stop_reason)]))
    assert parsed[-2]["choices"][0]["finish_reason"] == finish
    assert [f["choices"][0]["finish_reason"] for f in parsed[:-2]] == [None] * (len(parsed) - 2)


def test_error_event_after_the_200_becomes_an_error_chunk_and_ends_the_stream():
    events = [wire.message_start(), *wire.text_block(0, "Half an ans")[:2]]
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    tail = [overloaded, *wire.text_block(0, "more")[1:], *wire.message_end()]
    translator = AnthropicStream("claude-x", "chatcmpl-local", CREATED, False)
    out = translator.feed(wire.stream([*events, overloaded]))
    assert translator.feed(wire.stream(tail)) == b""  # nothing after the error
    assert translator.finish() == b""
    parsed = wire.frames(out)
    assert wire.accumulate(parsed)["content"] == "Half an ans"
    assert parsed[-1] == {
        "error": {"message": "Overloaded", "type": "overloaded_error", "param": None, "code": None}
    }
    assert b"[DONE]" not in out


def test_a_stream_cut_before_message_stop_is_never_a_silent_end():
    events = [wire.message_start(), *wire.text_block(0, "Half")[:2]]
    parsed = wire.frames(translate([wire.stream(events)]))
    assert parsed[-1]["error"]["message"].startswith("The Anthropic stream ended before")
    assert "[DONE]" not in parsed
    # Cut after the finish chunk (only message_stop lost): the answer is whole, [DONE] follows.
    events += [wire.block_stop(0), *wire.message_end()[:1]]
    parsed = wire.frames(translate([wire.stream(events)]))
    assert parsed[-2]["choices"][0]["finish_reason"] == "stop" and parsed[-1] == "[DONE]"


def test_fail_sends_the_error_once_and_nothing_after_done():
    translator = AnthropicStream("claude-x", "chatcmpl-local", CREATED, False)
    translator.feed(wire.event(wire.message_start()))
    out = translator.fail(GatewayError(502, "The upstream stream broke off: reset"))
    assert json.loads(out[len(b"data: ") :])["error"]["message"].endswith("reset")
    assert translator.fail(GatewayError(502, "again")) == b""
    assert translator.finish() == b""
    done = AnthropicStream("claude-x", "chatcmpl-local", CREATED, False)
    done.feed(wire.text_stream("x"))
    assert done.fail(GatewayError(502, "late")) == b""


@pytest.mark.parametrize(
    "bad",
    [
        b"data: {not json\n\n",
        b'data: {"type": "content_block_delta", "index": 9, "delta": '
        b'{"type": "input_json_delta", "partial_json": "{"}}\n\n',
        b'data: ["type"]\n\n',
        b"data: " + b"[" * 100_000 + b"\n\n",  # nested too deeply
    ],
)
def test_malformed_events_end_the_stream_with_an_error_chunk(bad):
    out = translate([wire.event(wire.message_start()), bad, wire.text_stream("late")])
    parsed = wire.frames(out)
    assert parsed[-1]["error"]["message"] == "The Anthropic upstream sent a malformed stream event."
    assert len(parsed) == 2


def test_unknown_events_and_blocks_are_skipped_and_model_id_fall_back():
    events = [
        {"type": "message_start", "message": {"usage": {"input_tokens": 3}}},
        {"type": "brand_new_event", "whatever": 1},
        wire.block_start(0, {"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search"}),
        wire.block_delta(0, {"type": "input_json_delta", "partial_json": '{"q": 1}'}),
        wire.block_stop(0),
        *wire.text_block(1, "ok"),
        wire.block_delta(1, {"type": "citations_delta", "citation": {}}),
        *wire.message_end(),
    ]
    parsed = wire.frames(translate([wire.stream(events)], model="claude-x"))
    assert {f["id"] for f in parsed[:-1]} == {"chatcmpl-local"}
    assert {f["model"] for f in parsed[:-1]} == {"claude-x"}
    assert wire.deltas(parsed)[1:] == [{"content": "ok"}, {}]


def test_an_event_nested_deeper_than_the_limit_is_malformed_before_it_is_parsed():
    # Under Pyodide json.loads of ~6000 levels is a fatal stack overflow, not an exception.
    block = b'{"type": "tool_use", "id": "t", "name": "f", "input": {"a": '
    start = b'data: {"type": "content_block_start", "index": 0, "content_block": '
    for depth, ok in ((MAX_DEPTH - 3, True), (MAX_DEPTH - 2, False)):  # 3 levels around
        nested = start + block + b"[" * depth + b"]" * depth + b"}}}\n\n"
        events = [wire.event(wire.message_start()), nested]
        events.append(wire.stream([wire.block_stop(0), *wire.message_end("tool_use")]))
        last = wire.frames(translate(events))[-1]
        assert last == "[DONE]" if ok else "malformed" in last["error"]["message"]


def test_lone_surrogate_is_written_as_a_json_escape():
    delta = b'{"type":"text_delta","text":"\\ud83d"}'
    raw = b'data: {"type":"content_block_delta","index":0,"delta":' + delta + b"}\n\n"
    out = translate([wire.event(wire.message_start()), wire.event(wire.text_block(0)[0]), raw])
    assert b'{"content":"\\ud83d"}' in out


def test_each_upstream_frame_is_answered_at_once():
    # A relay must not hold output back: every content event yields its chunk in the same feed.
    translator = AnthropicStream("claude-x", "chatcmpl-local", CREATED, False)
    for frame in wire.text_stream("a", "b").split(b"\n\n")[:-1]:
        kind = json.loads(frame.split(b"data: ", 1)[1])["type"]
        out = translator.feed(frame + b"\n\n")
        assert bool(out) == (kind not in ("content_block_start", "content_block_stop")), kind


def source_events(raw: bytes) -> list[dict]:
    return [json.loads(line[5:]) for line in raw.splitlines() if line.startswith(b"data:")]


@pytest.mark.skipif(not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON)
@pytest.mark.parametrize("name", shared_fixtures.names("anthropic", "stream-") or ["none"])
def test_recorded_streams_translate_exactly_in_any_split(name):
    raw = shared_fixtures.body(name)
    reference = translate([raw], include_usage=True)
    for seed in range(20):
        assert translate(random_splits(raw, seed), include_usage=True) == reference
    parsed = wire.frames(reference)
    source = source_events(raw)
    start = source[0]["message"]
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert {f["id"] for f in parsed[:-1]} == {start["id"]}
    assert {f["model"] for f in parsed[:-1]} == {start["model"]}
    assert parsed[-1] == "[DONE]"
    deltas = [e["delta"] for e in source if e["type"] == "content_block_delta"]
    whole = wire.accumulate(parsed)
    assert whole["content"] == "".join(d.get("text", "") for d in deltas)
    assert whole["reasoning"] == "".join(d.get("thinking", "") for d in deltas)
    signatures = [d["signature"] for d in deltas if d["type"] == "signature_delta"]
    assert [d["signature"] for d in whole["details"]] == signatures
    tools = [
        e["content_block"]
        for e in source
        if e["type"] == "content_block_start" and e["content_block"]["type"] == "tool_use"
    ]
    assert [(c["id"], c["name"]) for c in whole["tool_calls"]] == [
        (t["id"], t["name"]) for t in tools
    ]
    for call in whole["tool_calls"]:
        assert isinstance(json.loads(call["arguments"]), dict)
    stop = next(e for e in source if e["type"] == "message_delta")["delta"]["stop_reason"]
    assert whole["finish_reason"] == {"end_turn": "stop", "tool_use": "tool_calls"}[stop]
    usage = parsed[-2]["usage"]
    assert parsed[-2]["choices"] == []
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"] > 0
    assert b": ping\n\n" in reference
