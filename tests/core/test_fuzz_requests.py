"""Fuzzing: odd and wrong-typed request bodies, and garbage upstream streams.

Whatever a client sends, the gateway answers 200 with a valid answer or an error in OpenAI's
shape (``{"error": {"message", "type", "param", "code"}}``), never a 500. Whatever an upstream
streams, the stream translators never raise: garbage becomes an error chunk, and a stream always
ends in ``[DONE]`` or an error chunk. Standard library, pytest and hypothesis only (this file
also runs inside Pyodide), and fast.
"""

from __future__ import annotations

import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgerelay.core.errors import GatewayError
from edgerelay.core.providers.anthropic_stream import AnthropicStream
from edgerelay.core.providers.base import ChatContext
from edgerelay.core.providers.gemini_stream import GeminiStream
from edgerelay.core.routing import Route
from edgerelay.core.sse import SSEParser
from tests.core.gateway_helpers import call, make_gateway
from tests.support.fake_fetch import FakeResponse

ENV = {"OPENAI_API_KEY": "sk-o", "ANTHROPIC_API_KEY": "sk-a", "GEMINI_API_KEY": "sk-g"}
MODELS = [
    "mock/echo",
    "anthropic/claude-sonnet-4-5",
    "claude-haiku-4-5",
    "gemini/gemini-2.5-flash",
    "gemini-3-pro-preview",
    "openai/gpt-4.1-mini",
]
FUZZ = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# -- JSON-ish values: what a confused or hostile client might put in any field ----------------

_leaf = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=6)
    | st.sampled_from(["", "auto", "none", "text", "function", "\u2028", "\ud800", "{", "[1]"])
)
anything = st.recursive(
    _leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)


def maybe(strategy):
    """Mostly the plausible value, sometimes any JSON value at all."""
    return st.one_of(strategy, anything)


def fields(fixed=None, required=None, **optional):
    """An object with the ``fixed`` keys (always plausible values), the ``required`` keys and
    any of the ``optional`` ones (plausible values, or anything)."""
    return st.fixed_dictionaries(
        {**(fixed or {}), **{k: maybe(v) for k, v in (required or {}).items()}},
        optional={k: maybe(v) for k, v in optional.items()},
    )


text = st.text(max_size=12) | st.sampled_from(["", " ", "\u2028\u2029\x85", "\ud83d", "é🙂"])
data_url = st.sampled_from(
    ["data:image/png;base64,iVBORw0KGgo=", "data:audio/wav;base64,UklGRg==", "data:,x", "data:"]
)
url = data_url | st.sampled_from(["https://example.com/cat.png", "http://x/y.jpg?z=1", "ftp://x"])
T = st.just  # a fixed key's value


part = st.one_of(
    fields({"type": T("text")}, {"text": text}),
    fields({"type": T("refusal")}, {"refusal": text}),
    fields({"type": T("image_url")}, {"image_url": fields({}, {"url": url}, detail=T("low"))}),
    fields(
        {"type": T("input_audio")},
        {"input_audio": fields({}, {"data": text, "format": st.sampled_from(["wav", "mp3"])})},
    ),
    fields({"type": T("file")}, {"file": fields(file_data=data_url, filename=text)}),
)
content = st.none() | text | st.lists(part, max_size=3)
call_ids = st.sampled_from(["call_1", "call_2", "toolu_x", ""])
arguments = st.sampled_from(["", "{}", '{"a": 1}', "[1]", "not json", '{"a": "\\ud800"}'])
tool_call = fields(
    {"type": T("function")},
    {
        "id": call_ids,
        "function": fields({}, {"name": st.sampled_from(["f", "g", ""]), "arguments": arguments}),
    },
)
reasoning_item = fields(
    {
        "type": st.sampled_from(["reasoning.text", "reasoning.encrypted"]),
        "format": st.sampled_from(["anthropic-claude-v1", "google-gemini-v1"]),
    },
    text=text,
    signature=text,
    data=text,
    id=call_ids | st.none(),
)
message = st.one_of(
    fields({"role": st.sampled_from(["system", "developer"])}, {"content": content}, name=text),
    fields({"role": T("user")}, {"content": content}, name=text),
    fields(
        {"role": T("assistant")},
        {"content": content},
        tool_calls=st.lists(tool_call, max_size=3),
        reasoning_details=st.lists(reasoning_item, max_size=2),
        function_call=fields({}, {"name": text, "arguments": arguments}),
        name=text,
    ),
    fields({"role": T("tool")}, {"tool_call_id": call_ids, "content": content}),
    fields({"role": T("function")}, {"name": text, "content": content}),
)
tool = fields(
    {"type": T("function")},
    {
        "function": fields(
            {"name": st.sampled_from(["f", "g"])},
            description=text,
            parameters=T({"type": "object", "properties": {}}),
            strict=st.booleans(),
        ),
    },
)
number = st.floats(0, 2, allow_nan=False) | st.integers(0, 3)
request = fields(
    {"model": st.sampled_from(MODELS), "messages": st.lists(message, min_size=1, max_size=4)},
    stream=st.booleans(),
    stream_options=fields(include_usage=st.booleans()),
    n=T(1),
    max_tokens=st.integers(0, 50_000),
    max_completion_tokens=st.integers(0, 50_000),
    temperature=number,
    top_p=number,
    seed=st.integers(),
    presence_penalty=number,
    frequency_penalty=number,
    stop=text | st.lists(text, max_size=2),
    tools=st.lists(tool, max_size=2),
    tool_choice=st.sampled_from(["auto", "none", "required"])
    | fields({"type": T("function")}, {"function": fields({}, {"name": T("f")})}),
    parallel_tool_calls=st.booleans(),
    response_format=fields({"type": st.sampled_from(["text", "json_object", "json_schema"])})
    | fields({"type": T("json_schema")}, {"json_schema": fields(schema=T({}))}),
    reasoning_effort=st.sampled_from(["none", "minimal", "low", "medium", "high", "xhigh"]),
    logprobs=st.booleans(),
    user=text,
    safety_identifier=text,
    modalities=T(["text"]),
    metadata=T({}),
)

# -- A fake upstream that answers each provider correctly ------------------------------------

ANTHROPIC_JSON = (
    b'{"id":"msg_1","type":"message","model":"claude-x","content":[{"type":"text","text":"Hi"}],'
    b'"stop_reason":"end_turn","usage":{"input_tokens":3,"output_tokens":1}}'
)
ANTHROPIC_SSE = (
    b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","model":"c",'
    b'"usage":{"input_tokens":3}}}\n\n'
    b'data: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}\n\n'
    b'data: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}\n\n'
    b'data: {"type":"content_block_stop","index":0}\n\n'
    b'data: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":1}}'
    b'\n\ndata: {"type":"message_stop"}\n\n'
)
GEMINI_JSON = (
    b'{"candidates":[{"content":{"role":"model","parts":[{"text":"Hi"}]},"finishReason":"STOP"}],'
    b'"usageMetadata":{"promptTokenCount":3,"candidatesTokenCount":1},"responseId":"r1"}'
)
GEMINI_SSE = b"data: " + GEMINI_JSON + b"\r\n\r\n"
OPENAI_JSON = b'{"id":"chatcmpl-1","object":"chat.completion","choices":[]}'


def strict_json(raw: bytes | str):
    """JSON as RFC 8259 has it: no NaN or Infinity."""

    def refuse(name):
        raise ValueError(f"{name} is not JSON")

    return json.loads(raw, parse_constant=refuse)


def upstream(request):
    strict_json(request.body)  # what the gateway sends must always be JSON
    stream = request.headers.get("accept") == "text/event-stream"
    if "/v1/messages" in request.url:
        return FakeResponse(200, {}, [ANTHROPIC_SSE if stream else ANTHROPIC_JSON])
    if "generativelanguage" in request.url:
        return FakeResponse(200, {}, [GEMINI_SSE if stream else GEMINI_JSON])
    return FakeResponse(200, {}, [b"data: [DONE]\n\n" if stream else OPENAI_JSON])


def check_openai_error(body: bytes) -> None:
    error = strict_json(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str)
    assert error["param"] is None or isinstance(error["param"], str)
    assert "Traceback" not in error["message"]
    assert not any(key in error["message"] for key in ENV.values())  # never a key


def check_stream(raw: bytes) -> None:
    """OpenAI chunks, then ``[DONE]`` or one error chunk: never a silent end."""
    parser = SSEParser()
    events = [e.data for e in parser.feed(raw) + parser.finish()]
    assert events, "an empty stream"
    for data in events[:-1]:
        assert strict_json(data)["object"] == "chat.completion.chunk"
    last = events[-1]
    assert last == "[DONE]" or "error" in strict_json(last), "a stream cut short silently"
    if last != "[DONE]":
        check_openai_error(last.encode())


def assert_sane(body) -> None:
    gateway, _ = make_gateway(upstream, env=ENV)
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    logging.disable(logging.CRITICAL)
    try:
        response, chunks = call(gateway, body=raw)
    finally:
        logging.disable(logging.NOTSET)
    assert response.status != 500, response.body
    if response.status >= 400:
        check_openai_error(response.body)
    elif chunks is not None and any(c.startswith(b"data: ") for c in chunks[:1]):
        check_stream(b"".join(chunks))
    elif chunks is None:
        answer = strict_json(response.body)
        assert answer["object"] == "chat.completion"
        assert answer["choices"][0]["message"]["role"] == "assistant"


@FUZZ
@given(request)
def test_fuzzed_requests_never_get_a_500(body):
    assert_sane(body)


@FUZZ
@given(st.dictionaries(st.sampled_from(["model", "messages", "stream", "tools"]), anything))
def test_fuzzed_top_level_fields_never_get_a_500(body):
    assert_sane(body)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\xff\xfe{}",
        b'"just a string"',
        b"null",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"model": "mock/echo", "messages": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"model": "mock/echo", "messages": [{"role": "user", "content": "\\ud800"}]}',
    ],
)
def test_odd_bodies_never_get_a_500(raw):
    assert_sane(raw)


# -- Stream translators: random splits and junk events never raise ---------------------------

CTX = ChatContext("chatcmpl-local", 1_760_000_000, lambda: "x", True)
junk_event = st.one_of(
    st.binary(max_size=40),
    anything.map(lambda v: b"data: " + json.dumps(v).encode() + b"\n\n"),
    st.builds(
        lambda kind, extra: b"data: " + json.dumps({"type": kind, **extra}).encode() + b"\n\n",
        st.sampled_from(
            [
                "message_start",
                "content_block_start",
                "content_block_delta",
                "content_block_stop",
                "message_delta",
                "message_stop",
                "error",
                "ping",
                "unknown",
            ]
        ),
        st.dictionaries(
            st.sampled_from(["index", "delta", "content_block", "message", "usage", "error"]),
            anything,
        ),
    ),
    st.sampled_from(
        [
            b"data: " + b"[" * 50_000 + b"\n\n",
            b'data: {"candidates": [{"content": {"parts": [{"text": "\\ud83d"}]}}]}\r\n\r\n',
            b'data: {"usageMetadata": [1], "candidates": [{"finishReason": "STOP"}]}\n\n',
            b'data: {"usageMetadata": {"promptTokenCount": null}}\n\n',
            b'data: {"usageMetadata": {"promptTokenCount": "3"}}\n\n',
            b'data: {"error": "down"}\n\n',
            b"data: \xff\xfe\n\n",
        ]
    ),
)


def make_translators():
    route = Route(None, "gemini", "gemini-2.5-flash", "gemini-2.5-flash")
    return [
        AnthropicStream("claude-x", "chatcmpl-local", 1_760_000_000, True),
        GeminiStream(route, CTX),
    ]


def run_translator(translator, pieces, cut: bool) -> bytes:
    out = b"".join(translator.feed(p) for p in pieces)
    if cut:
        out += translator.fail(GatewayError(502, "The upstream stream broke off."))
    out += translator.finish()
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    cuts = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@FUZZ
@given(
    st.lists(junk_event, max_size=6),
    st.sampled_from([b"", ANTHROPIC_SSE, GEMINI_SSE]),
    st.lists(st.integers(0, 10_000), max_size=8),
    st.booleans(),
)
def test_stream_translators_never_raise_on_junk(junk, good, cuts, cut):
    body = good[: len(good) // 2] + b"".join(junk) + good[len(good) // 2 :]
    for translator in make_translators():
        out = run_translator(translator, split(body, cuts), cut)
        out.decode("utf-8")  # valid UTF-8, always
        check_stream(out)


# -- Whole JSON answers: an upstream answer of any shape is translated or a 502 -----------------

ANTHROPIC_ANSWER = {
    "id": "msg_1",
    "model": "claude-x",
    "content": [
        {"type": "text", "text": "Hi"},
        {"type": "tool_use", "id": "t", "name": "f", "input": {"a": 1}},
        {"type": "thinking", "thinking": "t", "signature": "s"},
        {"type": "redacted_thinking", "data": "d"},
    ],
    "stop_reason": "end_turn",
    "usage": {"input_tokens": 3, "output_tokens": 1, "cache_read_input_tokens": 1},
}
GEMINI_ANSWER = {
    "candidates": [
        {
            "content": {
                "parts": [
                    {"text": "Hi"},
                    {"text": "thinking", "thought": True},
                    {"functionCall": {"name": "f", "args": {"a": 1}}, "thoughtSignature": "s"},
                ]
            },
            "finishReason": "STOP",
        }
    ],
    "usageMetadata": {"promptTokenCount": 3, "candidatesTokenCount": 1},
    "promptFeedback": {"blockReason": "SAFETY"},
}


def mutated(value, data):
    """``value`` with some of its members, at any depth, replaced by anything at all."""
    if data.draw(st.integers(0, 7)) == 0:
        return data.draw(anything)
    if isinstance(value, dict):
        return {k: mutated(v, data) for k, v in value.items()}
    if isinstance(value, list):
        return [mutated(v, data) for v in value]
    return value


@FUZZ
@given(st.data())
def test_json_answers_of_any_shape_are_translated_or_a_502(data):
    from edgerelay.core.providers import anthropic, gemini

    route = Route(None, "gemini", "m", "m")
    for module, answer in ((anthropic, ANTHROPIC_ANSWER), (gemini, GEMINI_ANSWER)):
        body = json.dumps(mutated(answer, data)).encode()
        try:
            completion = strict_json(module.translate_response(body, route, CTX))
        except GatewayError as error:
            assert error.status == 502
        else:
            assert completion["choices"][0]["message"]["role"] == "assistant"
        error = module.translate_error(429, body, {})
        check_openai_error(error.render())
