"""End to end: the official openai SDK against the real gateway on uvicorn, with a loopback fake
Anthropic upstream speaking the Messages wire format."""

import json

import httpx
import openai
import pytest

from tests.support import anthropic_wire as wire
from tests.support import shared_fixtures
from tests.support.loopback import WAIT, Reply, sse_frames
from tests.support.splits import random_splits

SSE = {"content-type": "text/event-stream; charset=utf-8"}
JSON = {"content-type": "application/json"}
MODEL = "anthropic/claude-sonnet-4-5"
USER = {"role": "user", "content": "Weather in Paris and Tokyo?"}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
        },
    }
]


@pytest.fixture
def client(upstream, gateway_for):
    gateway = gateway_for({"ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_API_KEY": "sk-ant-up"})
    sdk = openai.OpenAI(
        base_url=gateway.url + "/v1", api_key="client-key", max_retries=0, timeout=WAIT
    )
    sdk.gateway_url = gateway.url
    return sdk


def serve(upstream, stream_events=None, answer=None, status=200):
    """Answer streamed requests with ``stream_events`` and the others with ``answer``."""

    def handler(seen):
        if status != 200:
            return Reply(status, JSON, [json.dumps(answer).encode()])
        if json.loads(seen.body).get("stream"):
            return Reply(200, SSE, random_splits(wire.stream(stream_events), 5))
        return Reply(200, JSON, [json.dumps(answer, indent=2).encode()])

    upstream.handler = handler


def sent(upstream, k=-1) -> tuple[dict, dict]:
    seen = upstream.seen[k]
    assert seen.method == "POST" and seen.path == "/v1/messages"
    return {k.lower(): v for k, v in seen.headers.items()}, json.loads(seen.body)


def message(content, stop_reason="end_turn", usage=None) -> dict:
    return {
        "id": "msg_01JSON",
        "type": "message",
        "role": "assistant",
        "model": "claude-sonnet-4-5-20250929",
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage or {"input_tokens": 20, "output_tokens": 8},
    }


def collect(stream) -> dict:
    """What an SDK user accumulates from the chunks."""
    chunks = list(stream)
    content, reasoning, details, calls, finish, usage = "", "", [], {}, None, None
    for chunk in chunks:
        usage = chunk.usage or usage
        if not chunk.choices:
            continue
        choice = chunk.choices[0]
        delta = choice.delta
        content += delta.content or ""
        extra = delta.model_extra or {}
        reasoning += extra.get("reasoning_content") or ""
        details += extra.get("reasoning_details") or []
        for call in delta.tool_calls or []:
            entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
            entry["id"] = call.id or entry["id"]
            entry["name"] = (call.function and call.function.name) or entry["name"]
            entry["arguments"] += (call.function and call.function.arguments) or ""
        finish = choice.finish_reason or finish
    return {
        "chunks": chunks,
        "content": content,
        "reasoning": reasoning,
        "details": details,
        "calls": [calls[i] for i in sorted(calls)],
        "finish": finish,
        "usage": usage,
    }


def test_non_stream_text_with_usage_and_the_upstream_sees_only_the_gateway_key(upstream, client):
    usage = {"input_tokens": 20, "cache_read_input_tokens": 5, "output_tokens": 8}
    serve(upstream, answer=message([{"type": "text", "text": "Sunny in both."}], usage=usage))
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "system", "content": "Be brief."}, USER],
        temperature=0.2,
        stop=["\n\n"],
    )
    assert completion.id == "msg_01JSON"
    assert completion.model == "claude-sonnet-4-5-20250929"
    assert completion.choices[0].message.content == "Sunny in both."
    assert completion.choices[0].message.role == "assistant"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage.prompt_tokens == 25
    assert completion.usage.completion_tokens == 8 and completion.usage.total_tokens == 33
    assert completion.usage.prompt_tokens_details.cached_tokens == 5
    headers, body = sent(upstream)
    assert headers["x-api-key"] == "sk-ant-up"
    assert headers["anthropic-version"] == "2023-06-01"
    assert "authorization" not in headers
    assert b"client-key" not in upstream.seen[-1].body
    assert body["system"] == "Be brief."
    assert body["model"] == "claude-sonnet-4-5"
    assert body["max_tokens"] == 4096
    assert body["stop_sequences"] == ["\n\n"] and body["temperature"] == 0.2


def test_stream_text_with_usage(upstream, client):
    events = [
        wire.message_start({"input_tokens": 30, "output_tokens": 1}),
        wire.block_start(0, {"type": "text", "text": ""}),
        wire.PING,
        *wire.text_block(0, "Sunny ", "in ", "both.")[1:],
        *wire.message_end("end_turn", {"output_tokens": 9}),
    ]
    serve(upstream, events)
    got = collect(
        client.chat.completions.create(
            model=MODEL, messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    first = got["chunks"][0]
    assert first.choices[0].delta.role == "assistant"
    assert first.id == wire.MSG_ID and first.model == wire.MODEL
    assert got["content"] == "Sunny in both."
    assert got["finish"] == "stop"
    assert got["chunks"][-1].choices == []
    assert (got["usage"].prompt_tokens, got["usage"].completion_tokens) == (30, 9)
    assert sent(upstream)[1]["stream"] is True


def test_parallel_tool_calls_streamed_and_not(upstream, client):
    events = [
        wire.message_start(),
        *wire.text_block(0, "Checking."),
        *wire.tool_block(1, "toolu_01P", "get_weather", '{"ci', 'ty": "Paris"}'),
        *wire.tool_block(2, "toolu_01T", "get_weather", '{"city": ', '"Tokyo"}'),
        *wire.tool_block(3, "toolu_01X", "get_weather"),
        *wire.message_end("tool_use"),
    ]
    content = [
        {"type": "text", "text": "Checking."},
        {"type": "tool_use", "id": "toolu_01P", "name": "get_weather", "input": {"city": "Paris"}},
        {"type": "tool_use", "id": "toolu_01T", "name": "get_weather", "input": {"city": "Tokyo"}},
    ]
    serve(upstream, events, message(content, "tool_use"))
    got = collect(
        client.chat.completions.create(model=MODEL, messages=[USER], tools=TOOLS, stream=True)
    )
    assert got["content"] == "Checking."
    assert got["finish"] == "tool_calls"
    assert [(c["id"], c["name"]) for c in got["calls"]] == [
        ("toolu_01P", "get_weather"),
        ("toolu_01T", "get_weather"),
        ("toolu_01X", "get_weather"),
    ]
    assert [json.loads(c["arguments"]) for c in got["calls"]] == [
        {"city": "Paris"},
        {"city": "Tokyo"},
        {},
    ]
    assert sent(upstream)[1]["tools"][0]["input_schema"] == TOOLS[0]["function"]["parameters"]

    completion = client.chat.completions.create(
        model=MODEL, messages=[USER], tools=TOOLS, tool_choice="required"
    )
    message_out = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [
        (c.id, c.function.name, json.loads(c.function.arguments)) for c in message_out.tool_calls
    ] == [
        ("toolu_01P", "get_weather", {"city": "Paris"}),
        ("toolu_01T", "get_weather", {"city": "Tokyo"}),
    ]
    assert sent(upstream)[1]["tool_choice"] == {"type": "any"}


def test_max_tokens_gives_length_streamed_and_not(upstream, client):
    events = [
        wire.message_start(),
        *wire.text_block(0, "Once upon"),
        *wire.message_end("max_tokens"),
    ]
    serve(upstream, events, message([{"type": "text", "text": "Once upon"}], "max_tokens"))
    completion = client.chat.completions.create(
        model=MODEL, messages=[USER], max_completion_tokens=3
    )
    assert completion.choices[0].finish_reason == "length"
    assert sent(upstream)[1]["max_tokens"] == 3
    got = collect(
        client.chat.completions.create(model=MODEL, messages=[USER], max_tokens=3, stream=True)
    )
    assert (got["content"], got["finish"]) == ("Once upon", "length")
    assert sent(upstream)[1]["max_tokens"] == 3


SIGNATURE = "EqQBCkYIBxgCKkBSig=="


def test_two_turn_tool_conversation_with_thinking_streamed_then_json(upstream, client):
    turn1 = [
        wire.message_start(),
        wire.block_start(0, {"type": "thinking", "thinking": "", "signature": ""}),
        wire.PING,
        *wire.thinking_block(0, SIGNATURE, "I need ", "the weather.")[1:],
        *wire.redacted_block(1, "REDACTED-DATA"),
        *wire.tool_block(2, "toolu_01W", "get_weather", '{"city": "Paris"}'),
        *wire.message_end("tool_use"),
    ]
    answer = message([{"type": "text", "text": "18°C in Paris."}])
    serve(upstream, turn1, answer)
    got = collect(
        client.chat.completions.create(
            model=MODEL, messages=[USER], tools=TOOLS, reasoning_effort="medium", stream=True
        )
    )
    assert got["reasoning"] == "I need the weather."
    assert got["content"] == ""  # thinking never leaks into content
    assert got["details"] == [
        {
            "type": "reasoning.text",
            "text": "I need the weather.",
            "signature": SIGNATURE,
            "format": "anthropic-claude-v1",
            "model": "claude-sonnet-4-5",
            "index": 0,
        },
        {
            "type": "reasoning.encrypted",
            "data": "REDACTED-DATA",
            "format": "anthropic-claude-v1",
            "model": "claude-sonnet-4-5",
            "index": 1,
        },
    ]
    first = sent(upstream)[1]
    assert first["thinking"] == {"type": "enabled", "budget_tokens": 8192}
    assert first["max_tokens"] == 8192 + 4096
    (call,) = got["calls"]
    assistant = {
        "role": "assistant",
        "content": None,
        "reasoning_details": got["details"],
        "tool_calls": [
            {
                "id": call["id"],
                "type": "function",
                "function": {"name": call["name"], "arguments": call["arguments"]},
            }
        ],
    }
    tool = {"role": "tool", "tool_call_id": call["id"], "content": "18°C"}
    completion = client.chat.completions.create(
        model=MODEL, messages=[USER, assistant, tool], tools=TOOLS, reasoning_effort="medium"
    )
    assert completion.choices[0].message.content == "18°C in Paris."
    second = sent(upstream)[1]
    assert second["messages"][1] == {
        "role": "assistant",
        "content": [
            {"type": "thinking", "thinking": "I need the weather.", "signature": SIGNATURE},
            {"type": "redacted_thinking", "data": "REDACTED-DATA"},
            {
                "type": "tool_use",
                "id": "toolu_01W",
                "name": "get_weather",
                "input": {"city": "Paris"},
            },
        ],
    }
    assert second["messages"][2] == {
        "role": "user",
        "content": [{"type": "tool_result", "tool_use_id": "toolu_01W", "content": "18°C"}],
    }


def test_json_thinking_answer_sent_back_as_the_sdk_dumps_it(upstream, client):
    content = [
        {"type": "thinking", "thinking": "Paris first.", "signature": SIGNATURE},
        {"type": "tool_use", "id": "toolu_01J", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    serve(upstream, answer=message(content, "tool_use"))
    completion = client.chat.completions.create(
        model=MODEL, messages=[USER], tools=TOOLS, reasoning_effort="low"
    )
    returned = completion.choices[0].message
    assert returned.model_extra["reasoning_content"] == "Paris first."
    serve(upstream, answer=message([{"type": "text", "text": "Done."}]))
    tool = {"role": "tool", "tool_call_id": "toolu_01J", "content": "18°C"}
    client.chat.completions.create(
        model=MODEL,
        messages=[USER, returned.model_dump(), tool],
        tools=TOOLS,
        reasoning_effort="low",
    )
    blocks = sent(upstream)[1]["messages"][1]["content"]
    assert [b["type"] for b in blocks] == ["thinking", "tool_use"]
    assert blocks[0]["signature"] == SIGNATURE


def test_error_after_the_200_reaches_the_sdk(upstream, client):
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    events = [wire.message_start(), *wire.text_block(0, "Half an")[:2], overloaded]
    serve(upstream, events)
    stream = client.chat.completions.create(model=MODEL, messages=[USER], stream=True)
    received = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert raised.value.message == "Overloaded"
    assert raised.value.type == "overloaded_error"
    assert "".join(received) == "Half an"


def test_upstream_error_status_reaches_the_sdk_and_529_is_503(upstream, client):
    body = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    serve(upstream, answer=body, status=529)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=MODEL, messages=[USER], stream=True)
    assert raised.value.status_code == 503
    assert raised.value.message.endswith("Overloaded") or "Overloaded" in str(raised.value)
    body = {"type": "error", "error": {"type": "invalid_request_error", "message": "bad image"}}
    serve(upstream, answer=body, status=400)
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=[USER])
    assert "bad image" in str(raised.value)
    with pytest.raises(openai.BadRequestError) as raised:  # refused before any upstream call
        client.chat.completions.create(model=MODEL, messages=[USER], n=2)
    assert raised.value.body["param"] == "n"


def test_translated_stream_is_relayed_in_lockstep(upstream, gateway_for):
    # Each upstream chunk yields exactly one output frame, and the next leaves the upstream only
    # after the client has read that frame: any buffering in the translated path deadlocks.
    text = wire.text_block(0, "a", "b", "c")
    chunks = [
        wire.event(wire.message_start()),
        wire.event(wire.PING),
        wire.event(text[0]) + wire.event(text[1]),
        wire.event(text[2]),
        wire.event(text[3]) + wire.event(text[4]),
        wire.event(wire.message_end()[0]),
        wire.event(wire.message_end()[1]),
    ]
    upstream.handler = lambda seen: Reply(200, SSE, chunks, lockstep=True)
    gateway = gateway_for({"ANTHROPIC_BASE_URL": upstream.url, "ANTHROPIC_API_KEY": "k"})
    body = {"model": MODEL, "stream": True, "messages": [USER]}
    got = []
    # The opening events (message_start, a ping) are held until the first content, so that a
    # failure before it can still be retried: let them out without waiting, lock-step after.
    held = 2
    for _ in range(held):
        upstream.release()
    with httpx.stream(
        "POST", gateway.url + "/v1/chat/completions", json=body, timeout=WAIT
    ) as response:
        assert response.status_code == 200
        for frame in sse_frames(response):
            got.append(frame)
            if len(got) > held:
                upstream.release()
    assert len(got) == len(chunks)
    assert got[1] == b": ping"
    assert got[-1] == b"data: [DONE]"
    parsed = [json.loads(f[len(b"data: ") :]) for f in got if f.startswith(b"data: {")]
    assert [p["choices"][0]["delta"].get("content") for p in parsed] == ["", "a", "b", "c", None]


@pytest.mark.skipif(not shared_fixtures.available(), reason=shared_fixtures.MISSING_REASON)
@pytest.mark.parametrize("name", shared_fixtures.names("anthropic", "stream-") or ["none"])
def test_recorded_streams_through_the_sdk(upstream, client, name):
    raw = shared_fixtures.body(name)
    upstream.handler = lambda seen: Reply(200, SSE, random_splits(raw, 11))
    got = collect(
        client.chat.completions.create(
            model=MODEL, messages=[USER], stream=True, stream_options={"include_usage": True}
        )
    )
    source = [json.loads(line[5:]) for line in raw.splitlines() if line.startswith(b"data:")]
    deltas = [e["delta"] for e in source if e["type"] == "content_block_delta"]
    assert got["content"] == "".join(d.get("text", "") for d in deltas)
    assert got["reasoning"] == "".join(d.get("thinking", "") for d in deltas)
    assert all(json.loads(c["arguments"]) is not None for c in got["calls"])
    assert got["finish"] in ("stop", "tool_calls")
    assert got["usage"].total_tokens > 0
