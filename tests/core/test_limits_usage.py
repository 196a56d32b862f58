"""Usage from every provider's JSON answers and streams (the recorded captures included), the
estimate, and include_usage added and removed with the client's bytes unchanged."""

from __future__ import annotations

import json

import pytest

from edgerelay.core.limits import IncludeUsageStripper, Usage, UsageMeter, from_answer
from edgerelay.core.limits.stream_usage import with_include_usage
from tests.support import shared_fixtures
from tests.support.splits import random_splits

needs_fixtures = pytest.mark.skipif(
    not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON
)


def chunk(content, usage="null", choices=True):
    body = '{"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":'
    body += (
        '[{"index":0,"delta":{"content":' + json.dumps(content) + '},"finish_reason":null}]'
        if choices
        else "[]"
    )
    if usage is not None:
        body += ',"usage":' + usage
    return ("data: " + body + "}\n\n").encode()


USAGE = '{"prompt_tokens":7,"completion_tokens":3,"total_tokens":10}'


def meter_of(data: bytes, seed=0) -> UsageMeter:
    meter = UsageMeter()
    for piece in random_splits(data, seed):
        meter.feed(piece)
    meter.finish()
    return meter


def test_usage_from_json_answers_of_each_api():
    assert from_answer({"usage": json.loads(USAGE)}) == Usage(7, 3)
    openai = {
        "usage": {
            "prompt_tokens": 10,
            "completion_tokens": 20,
            "prompt_tokens_details": {"cached_tokens": 4},
            "completion_tokens_details": {"reasoning_tokens": 5},
        }
    }
    assert from_answer(openai) == Usage(10, 20, 5, 4)
    anthropic = {
        "type": "message",
        "usage": {"input_tokens": 5, "cache_read_input_tokens": 3, "output_tokens": 9},
    }
    assert from_answer(anthropic) == Usage(8, 9, 0, 3)
    gemini = {
        "usageMetadata": {
            "promptTokenCount": 11,
            "candidatesTokenCount": 6,
            "thoughtsTokenCount": 4,
            "cachedContentTokenCount": 2,
        }
    }
    assert from_answer(gemini) == Usage(11, 10, 4, 2)
    responses = {"usage": {"input_tokens": 16, "output_tokens": 11, "total_tokens": 27}}
    assert from_answer(responses) == Usage(16, 11)
    assert from_answer({"usage": {"prompt_tokens": "x", "completion_tokens": True}}) == Usage()
    assert from_answer([1]) is None and from_answer({"choices": []}) is None


@needs_fixtures
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai/nonstream-text-1.json", None),
        ("anthropic/nonstream-text-1.json", None),
        ("gemini/nonstream-text-1.json", None),
        ("openai-responses/nonstream-text-1.json", None),
    ],
)
def test_usage_from_recorded_json_answers(name, expected):
    answer = json.loads(shared_fixtures.body(name))
    usage = from_answer(answer)
    assert usage is not None and usage.input > 0 and usage.output > 0


@needs_fixtures
@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("openai/stream-text-usage-1.sse", Usage(87, 26)),
        ("anthropic/stream-text-1.sse", Usage(17, 10)),
        ("gemini/stream-text-1.sse", Usage(13, 8)),
        ("openai-responses/stream-text-1.sse", Usage(16, 11)),
    ],
)
def test_usage_from_recorded_streams_in_any_split(name, expected):
    data = shared_fixtures.body(name)
    for seed in range(5):
        meter = meter_of(data, seed)
        assert meter.usage == expected
        assert meter.bytes == len(data)


@needs_fixtures
def test_every_recorded_stream_reports_usage():
    for provider in ("openai", "anthropic", "gemini", "openai-responses"):
        for name in shared_fixtures.names(provider, "stream-"):
            if not name.endswith(".sse"):
                continue
            data = shared_fixtures.body(name)
            meter = meter_of(data)
            if provider == "openai" and b'"usage":{' not in data:
                assert meter.usage is None, name  # asked without include_usage: none sent
            else:
                assert meter.usage is not None and meter.usage.output > 0, name


def test_anthropic_stream_output_is_cumulative_and_input_comes_first():
    start = {
        "type": "message_start",
        "message": {"usage": {"input_tokens": 12, "output_tokens": 1}},
    }
    delta = {"type": "message_delta", "usage": {"output_tokens": 30}}
    data = b"".join(
        b"event: " + e["type"].encode() + b"\ndata: " + json.dumps(e).encode() + b"\n\n"
        for e in (start, delta)
    )
    assert meter_of(data).usage == Usage(12, 30)


def test_stripper_leaves_no_trace_of_the_added_option():
    asked = b"".join(chunk(w) for w in ("Hel", "lo", ' "usage":null ')) + chunk(
        "", USAGE, choices=False
    )
    asked += b"data: [DONE]\n\n"
    expected = b"".join(chunk(w, usage=None) for w in ("Hel", "lo", ' "usage":null '))
    expected += b"data: [DONE]\n\n"
    for seed in range(20):
        meter = UsageMeter()
        stripper = IncludeUsageStripper(meter)
        out = b"".join(stripper.feed(p) for p in random_splits(asked, seed)) + stripper.finish()
        assert out == expected
        assert meter.usage == Usage(7, 3)
        assert meter.bytes == len(expected)


@needs_fixtures
def test_stripped_recorded_stream_is_what_the_client_gets_without_include_usage():
    asked = shared_fixtures.body("openai/stream-text-usage-1.sse")
    events = asked.split(b"\n\n")
    # Independently: without the option each chunk lacks "usage" and the usage chunk is absent.
    kept = [e.replace(b',"usage":null}', b"}") for e in events if b'"choices":[]' not in e]
    expected = b"\n\n".join(kept)
    meter = UsageMeter()
    stripper = IncludeUsageStripper(meter)
    out = b"".join(stripper.feed(p) for p in random_splits(asked, 3)) + stripper.finish()
    assert out == expected
    assert b'"usage"' not in out
    assert meter.usage == Usage(87, 26)


def test_stripper_passes_on_what_it_cannot_prove_safe():
    odd = b'data: {"choices":[],"usage":null,"x":"a"}\n\n'  # no usage figure: kept
    weird = b"data: not json usage\n\n"
    multi = b'data: {"usage":null,\ndata: "a":1}\n\n'
    for event in (weird, multi):
        stripper = IncludeUsageStripper(UsageMeter())
        assert stripper.feed(event) + stripper.finish() == event
    stripper = IncludeUsageStripper(UsageMeter())
    assert stripper.feed(odd) == b'data: {"choices":[],"x":"a"}\n\n'


def test_with_include_usage_keeps_other_stream_options():
    body = {"model": "m", "stream_options": {"other": 1}}
    assert with_include_usage(body)["stream_options"] == {"other": 1, "include_usage": True}
    assert body["stream_options"] == {"other": 1}
